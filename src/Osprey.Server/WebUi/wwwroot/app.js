// Osprey chat page: plain JavaScript, no build step. Talks to this server's OpenAI API.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log"), input = $("input"), send = $("send"), stop = $("stop");
  const status = $("status"), errorBox = $("error"), model = $("model"), apiKey = $("api_key");
  const history = []; // {role, content} of finished turns
  let controller = null;

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (apiKey.value.trim()) h.Authorization = "Bearer " + apiKey.value.trim();
    return h;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  // The message of an OpenAI-shaped error body ({"error": {"message": ...}}), or the status line.
  async function errorOf(response) {
    let text = "";
    try { text = await response.text(); } catch (_) { /* no body */ }
    try {
      const body = JSON.parse(text);
      if (body && body.error) return typeof body.error === "string" ? body.error : (body.error.message || JSON.stringify(body.error));
    } catch (_) { /* not JSON */ }
    return `${response.status} ${response.statusText}${text ? ": " + text : ""}`;
  }

  function needKey(response) {
    if (response.status !== 401) return false;
    apiKey.focus();
    return true;
  }

  async function loadModels() {
    status.textContent = "Loading models…";
    try {
      const response = await fetch("v1/models", { headers: headers() });
      if (!response.ok) {
        const message = await errorOf(response);
        showError(needKey(response) ? "This server needs an API key: enter it under Settings, then press Enter in the key field. (" + message + ")" : "Could not list models: " + message);
        status.textContent = "";
        return;
      }
      const body = await response.json();
      model.replaceChildren(...body.data.map((m) => new Option(m.id, m.id)));
      // ?model=NAME picks a served model other than the first (the web UI's Chat tab names the adapter it loaded).
      const wanted = new URLSearchParams(location.search).get("model");
      if (wanted && body.data.some((m) => m.id === wanted)) model.value = wanted;
      status.textContent = `${body.data.length} model${body.data.length === 1 ? "" : "s"}`;
      document.body.dataset.models = String(body.data.length);
      showError("");
    } catch (e) {
      showError("Could not list models: " + e.message);
      status.textContent = "";
    }
  }

  function addMessage(role, text) {
    const li = document.createElement("li");
    li.className = role;
    li.setAttribute("aria-label", role === "user" ? "You" : "Assistant");
    li.textContent = text;
    log.append(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  function number(id, parse) {
    const v = $(id).value.trim();
    return v === "" ? undefined : parse(v);
  }

  function busy(on) {
    send.disabled = on;
    stop.disabled = !on;
    document.body.dataset.busy = on ? "true" : "false";
  }

  async function ask(question) {
    showError("");
    history.push({ role: "user", content: question });
    const asked = addMessage("user", question);
    const reply = addMessage("assistant", "");
    reply.dataset.done = "false";
    reply.dataset.deltas = "0";
    const messages = [];
    const system = $("system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...history);
    const request = {
      model: model.value || undefined,
      messages,
      stream: true,
      temperature: number("temperature", parseFloat),
      top_p: number("top_p", parseFloat),
      max_tokens: number("max_tokens", (v) => parseInt(v, 10)),
    };
    controller = new AbortController();
    busy(true);
    let text = "", finish = null;
    try {
      const response = await fetch("v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(request), signal: controller.signal });
      if (!response.ok) {
        const message = await errorOf(response);
        throw new Error(needKey(response) ? "This server needs an API key: enter it under Settings. (" + message + ")" : message);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "", done = false;
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") { done = true; break; }
          const event = JSON.parse(data);
          if (event.error) throw new Error(event.error.message || JSON.stringify(event.error));
          const choice = event.choices && event.choices[0];
          if (!choice) continue;
          const delta = choice.delta && choice.delta.content;
          if (delta) {
            text += delta;
            reply.textContent = text;
            reply.dataset.deltas = String(Number(reply.dataset.deltas) + 1);
            reply.scrollIntoView({ block: "end" });
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
      if (done) reader.cancel().catch(() => {});
    } catch (e) {
      if (e.name === "AbortError") finish = "stopped";
      else showError(e.message);
    } finally {
      controller = null;
      reply.dataset.done = "true";
      reply.dataset.finish = finish || "";
      // A turn with no reply is dropped, so the history keeps alternating user and assistant; on screen its empty
      // reply bubble goes too, and the question is marked as not sent to the model as part of the conversation.
      if (text) history.push({ role: "assistant", content: text });
      else {
        history.pop();
        reply.remove();
        asked.classList.add("failed");
        asked.dataset.failed = "true";
      }
      busy(false);
      input.focus();
    }
  }

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || controller) return;
    input.value = "";
    ask(question);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
  $("clear").addEventListener("click", () => { history.length = 0; log.replaceChildren(); showError(""); input.focus(); });
  apiKey.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); loadModels(); } });
  apiKey.addEventListener("change", loadModels);
  $("settings").addEventListener("submit", (e) => e.preventDefault());

  busy(false);
  loadModels();
})();
