// Osprey web UI: forms built from the verbs' declared flags (GET /api/verbs/VERB/schema), jobs, live charts, chat.
// Plain JavaScript, no build step, no CDN.
"use strict";
(() => {
  // Which verbs each tab offers. A new verb with a form is one more name here (verbs the server lacks are skipped).
  const TABS = [
    { id: "train", verbs: ["sft", "pt"] },
    { id: "rlhf", verbs: ["rlhf", "grpo"] },
    { id: "eval", verbs: ["eval"] },
    { id: "export", verbs: ["export"] },
    { id: "deploy", verbs: ["deploy"] },
    { id: "chat", special: true },
    { id: "hub", verbs: ["download", "cache"] },
    { id: "runs", special: true },
  ];

  const $ = (selector, root = document) => root.querySelector(selector);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const c of children) node.append(c);
    return node;
  };
  let lang = localStorage.getItem("osprey-lang") || "en";
  const S = (key, args = {}) => ((window.OSPREY_STRINGS[lang] || {})[key] || window.OSPREY_STRINGS.en[key] || key)
    .replace(/\{(\w+)\}/g, (_, k) => args[k] ?? "");

  async function api(path, options = {}) {
    const response = await fetch(path, options);
    if (response.status === 401) { $("#keyform").hidden = false; throw new Error(S("key_needed")); }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
    if (!response.ok) throw new Error(body && body.error ? body.error.message : `${response.status} ${text}`);
    return body;
  }
  const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  const state = { info: null, schemas: {}, panels: {}, jobs: [], selected: null, compare: new Set(), metrics: {}, streams: {}, reports: {}, tab: "train" };

  // ---------- tabs ----------
  function buildTabs() {
    const nav = $("#tabs"), main = $("#panels");
    const offered = new Set(state.info.verbs.map((v) => v.name));
    for (const tab of TABS) {
      const verbs = (tab.verbs || []).filter((v) => offered.has(v));
      if (!tab.special && verbs.length === 0) continue;
      const button = el("button", { type: "button", role: "tab", id: "tab-" + tab.id });
      button.dataset.i18n = "tab_" + tab.id;
      button.addEventListener("click", () => showTab(tab.id));
      nav.append(button);
      let panel;
      if (tab.id === "runs") panel = buildRuns();
      else if (tab.id === "chat") panel = buildChat();
      else panel = buildVerbPanel(verbs);
      panel.id = "panel-" + tab.id;
      panel.hidden = true;
      main.append(panel);
    }
  }

  function showTab(id) {
    state.tab = id;
    for (const b of document.querySelectorAll("#tabs [role=tab]")) b.setAttribute("aria-selected", String(b.id === "tab-" + id));
    for (const p of document.querySelectorAll("#panels > .panel")) p.hidden = p.id !== "panel-" + id;
    document.body.dataset.tab = id;
    if (id === "runs") { drawCharts(); showEval(); }
    history.replaceState(null, "", "#" + id);
  }

  // ---------- forms ----------
  function buildVerbPanel(verbs) {
    const panel = $("#verb-panel").content.firstElementChild.cloneNode(true);
    const chooser = $(".verbs", panel);
    const form = { panel, verb: verbs[0], fields: {} };
    verbs.forEach((verb, i) => {
      const id = "verb-" + verb;
      const radio = el("input", { type: "radio", name: "verb-" + verbs.join("-"), id, value: verb, checked: i === 0 });
      radio.addEventListener("change", () => { form.verb = verb; renderForm(form); });
      chooser.append(el("label", { htmlFor: id }, radio, " " + verb));
    });
    if (verbs.length < 2) chooser.hidden = true;
    $(".form", panel).addEventListener("input", () => preview(form));
    $(".form", panel).addEventListener("change", () => preview(form));
    $(".start", panel).addEventListener("click", () => start(form));
    $(".copy", panel).addEventListener("click", () => copy($(".command", panel).textContent, $(".copy", panel)));
    $(".save", panel).addEventListener("click", () => saveYaml(form));
    $(".load", panel).addEventListener("change", (e) => loadYaml(form, e.target));
    for (const verb of verbs) state.panels[verb] = form;
    renderForm(form);
    return panel;
  }

  async function schema(verb) {
    if (!state.schemas[verb]) state.schemas[verb] = await api(`/api/verbs/${encodeURIComponent(verb)}/schema`);
    return state.schemas[verb];
  }

  async function renderForm(form) {
    const s = await schema(form.verb);
    const panel = form.panel;
    $(".summary", panel).textContent = s.summary;
    panel.dataset.verb = form.verb;
    const common = $(".common", panel), rest = $(".rest", panel);
    common.replaceChildren();
    rest.replaceChildren();
    form.fields = {};
    form.options = s.options;
    const ordered = [...s.options.filter((o) => o.common), ...s.options.filter((o) => !o.common)];
    // A short form, or one that declares no common flags, is shown whole: folding it would hide everything.
    const unfold = ordered.length <= 12 || !ordered.some((o) => o.common);
    for (const o of ordered) {
      const field = buildField(form.verb, o);
      form.fields[o.name] = field;
      (o.common || o.name === "model" || unfold ? common : rest).append(field.wrap);
    }
    $(".more", panel).hidden = rest.children.length === 0;
    // The model flag leads every form that has one, though it sits in a shared group.
    if (form.fields.model) common.prepend(form.fields.model.wrap);
    $(".more > summary", panel).textContent = S("more_flags", { n: rest.children.length });
    preview(form);
  }

  function buildField(verb, o) {
    const id = `f-${verb}-${o.name}`;
    let input;
    const shownDefault = o.default_text ?? (o.default === null ? "" : Array.isArray(o.default) ? o.default.join(" ") : String(o.default));
    if (o.kind === "choice" || o.kind === "bool") {
      input = el("select", { id, name: o.name });
      input.append(new Option(shownDefault ? `${S("default_")}: ${shownDefault}` : "—", ""));
      for (const c of o.kind === "bool" ? ["true", "false"] : o.choices) input.append(new Option(c, c));
    } else {
      input = el("input", { id, name: o.name, type: o.secret ? "password" : "text", placeholder: shownDefault, spellcheck: false });
      if (o.kind === "int" || o.kind === "long" || o.kind === "double") input.inputMode = "decimal";
    }
    input.title = o.help;
    const label = el("label", { htmlFor: id, className: "name" }, "--" + o.name);
    const help = el("small", { className: "help" }, o.help);
    const wrap = el("div", { className: "field" + (o.path ? " path" : "") }, label, input, help);
    wrap.dataset.flag = o.name;
    return { o, input, wrap };
  }

  function values(form) {
    const out = {};
    for (const [name, f] of Object.entries(form.fields)) {
      const v = f.input.value.trim();
      if (!v) continue;
      out[name] = f.o.kind === "list" ? v.split(/\s+/) : v;
    }
    return out;
  }

  function setValues(form, given) {
    for (const f of Object.values(form.fields)) f.input.value = "";
    const unknown = [];
    for (const [key, value] of Object.entries(given)) {
      const name = key.replace(/-/g, "_");
      const f = form.fields[name] || Object.values(form.fields).find((x) => x.o.aliases.includes(name));
      if (!f) { unknown.push(key); continue; }
      f.input.value = Array.isArray(value) ? value.join(" ") : String(value);
      if (!f.o.common && f.input.value) $(".more", form.panel).open = true;
    }
    preview(form);
    if (unknown.length) showFormError(form, `${unknown.map((u) => "--" + u).join(", ")}: not a flag of ${form.verb}.`);
  }

  // Each form has its own timer, so rendering one form does not cancel another's first preview.
  function preview(form) {
    clearTimeout(form.timer);
    form.timer = setTimeout(async () => {
      try {
        const body = await post("/api/command", { verb: form.verb, values: values(form) });
        $(".command", form.panel).textContent = body.command;
        showFormError(form, "");
        estimate(form, body.command);
      } catch (e) {
        showFormError(form, e.message);
      }
    }, 150);
  }

  // The memory-fit advisor's estimate (osprey estimate, through the library) for a training form, beside Start.
  // Asked again only when the command changes, since a hub model's config.json may have to be fetched.
  const ESTIMATED = new Set(["sft", "pt", "rlhf"]);
  async function estimate(form, command) {
    const box = $(".estimate", form.panel);
    if (!ESTIMATED.has(form.verb) || !values(form).model) { box.hidden = true; form.estimated = null; return; }
    if (form.estimated === command) return;
    form.estimated = command;
    try {
      const e = await post("/api/estimate", { verb: form.verb, values: values(form) });
      if (form.estimated !== command) return;
      const gib = (b) => (b / 2 ** 30).toFixed(2);
      box.textContent = S("estimate", { peak: gib(e.peak_bytes), params: Number(e.trainable_parameters).toLocaleString("en-US") })
        + (e.free_bytes == null ? "" : " " + S("estimate_free", { free: gib(e.free_bytes) })) + (e.advice ? ` ${e.advice}` : "");
      box.dataset.peakBytes = String(e.peak_bytes);
      box.classList.toggle("bad", !!e.advice);
      box.hidden = false;
    } catch (err) {
      if (form.estimated !== command) return;
      box.textContent = S("estimate_none", { why: err.message });
      delete box.dataset.peakBytes;
      box.classList.remove("bad");
      box.hidden = false;
    }
  }

  function showFormError(form, message) {
    const box = $(".form-error", form.panel);
    box.textContent = message;
    box.hidden = !message;
  }

  async function start(form) {
    try {
      const job = await post("/api/jobs", { verb: form.verb, values: values(form) });
      showFormError(form, "");
      await refreshJobs();
      selectJob(job.id);
      showTab("runs");
    } catch (e) {
      showFormError(form, e.message);
    }
  }

  async function copy(text, button) {
    try { await navigator.clipboard.writeText(text); } catch (_) {
      const area = el("textarea", { value: text });
      document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
    }
    const old = button.textContent;
    button.textContent = S("copied");
    setTimeout(() => { button.textContent = old; }, 1200);
  }

  // ---------- --config YAML: the flat mapping ms-swift's config files use ----------
  function yamlText(v) { return /^[\w./@:+-]+$/.test(v) && !/^(true|false|null|yes|no|~)$/i.test(v) ? v : JSON.stringify(v); }

  function saveYaml(form) {
    const lines = [`# osprey ${form.verb} --config this.yaml`];
    for (const [name, v] of Object.entries(values(form))) {
      if (Array.isArray(v)) { lines.push(`${name}:`); for (const item of v) lines.push(`  - ${yamlText(item)}`); }
      else lines.push(`${name}: ${yamlText(v)}`);
    }
    const link = el("a", { href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/yaml" })), download: `${form.verb}.yaml` });
    link.click();
    URL.revokeObjectURL(link.href);
  }

  function unquote(v) {
    v = v.trim();
    if (v.startsWith('"')) { try { return JSON.parse(v); } catch (_) { return v.slice(1, -1); } }
    if (v.startsWith("'")) return v.slice(1, -1).replace(/''/g, "'");
    return v.replace(/\s+#.*$/, "");
  }

  function parseYaml(text) {
    if (text.trim().startsWith("{")) return JSON.parse(text);
    const out = {};
    let listKey = null;
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.replace(/^\s*#.*$/, "");
      if (!line.trim() || line.trim() === "---") return;
      const item = line.match(/^\s+-\s*(.*)$/) || line.match(/^-\s+(.*)$/);
      if (item && listKey) { out[listKey].push(unquote(item[1])); return; }
      const pair = line.match(/^([\w.-]+)\s*:\s*(.*)$/);
      if (!pair) throw new Error(`line ${i + 1}: expected "flag: value", got "${raw.trim()}".`);
      const value = pair[2].trim();
      if (value === "") { listKey = pair[1]; out[listKey] = []; return; }
      listKey = null;
      out[pair[1]] = value.startsWith("[") && value.endsWith("]")
        ? value.slice(1, -1).split(",").map(unquote).filter((x) => x !== "") : unquote(value);
    });
    return out;
  }

  async function loadYaml(form, input) {
    const file = input.files[0];
    if (!file) return;
    try { setValues(form, parseYaml(await file.text())); } catch (e) { showFormError(form, `${file.name}: ${e.message}`); }
    input.value = "";
  }

  // ---------- runs ----------
  function buildRuns() {
    const panel = el("section", { className: "panel runs" });
    panel.innerHTML = `
      <div class="jobs"><h2 data-i18n="jobs"></h2><p class="empty" data-i18n="no_jobs"></p>
        <table><thead><tr><th data-i18n="compare"></th><th data-i18n="job"></th><th data-i18n="verb"></th><th data-i18n="state"></th></tr></thead><tbody></tbody></table></div>
      <div class="detail"><p class="pick" data-i18n="pick_job"></p>
        <div class="job" hidden>
          <div class="buttons"><button type="button" class="stop" data-i18n="stop"></button><button type="button" class="resume" data-i18n="resume"></button>
            <button type="button" class="chat-with" data-i18n="chat_with"></button><button type="button" class="merge" data-i18n="export_merge"></button>
            <button type="button" class="delete" data-i18n="delete_"></button></div>
          <p class="job-error" role="alert" hidden></p>
          <dl><dt data-i18n="command"></dt><dd><code class="job-command"></code></dd>
            <dt class="train-only" data-i18n="run_folder"></dt><dd class="train-only run-dir"></dd><dt class="train-only" data-i18n="tensorboard"></dt><dd class="train-only tb"></dd>
            <dt class="train-only" data-i18n="checkpoint"></dt><dd class="train-only ckpt"></dd></dl>
          <div class="eval" hidden><h3 data-i18n="eval_results"></h3><p class="eval-note"></p>
            <div class="table-wrap"><table class="eval-table"><thead></thead><tbody></tbody></table></div><canvas class="eval-chart"></canvas></div>
          <div class="chart-box"><h3 data-i18n="charts"></h3><p class="no-points" data-i18n="no_points"></p><div class="charts"></div></div>
          <h3 data-i18n="log"></h3><pre class="log"></pre>
        </div></div>`;
    $(".stop", panel).addEventListener("click", () => jobAction("stop"));
    $(".resume", panel).addEventListener("click", () => jobAction("resume"));
    $(".delete", panel).addEventListener("click", () => jobAction("delete"));
    $(".chat-with", panel).addEventListener("click", () => chatWith(selectedJob()));
    $(".merge", panel).addEventListener("click", () => mergeExport(selectedJob()));
    return panel;
  }

  const selectedJob = () => state.jobs.find((j) => j.id === state.selected);
  // Jobs of these verbs write logging.jsonl in a run folder; the others (eval, export, deploy, app, download, cache) never do.
  const TRAINING = new Set(["sft", "pt", "rlhf", "grpo"]);
  const trains = (job) => TRAINING.has(job.verb) || !!job.run_directory;

  async function refreshJobs() {
    try { state.jobs = await api("/api/jobs"); } catch (_) { return; }
    const body = $("#panel-runs tbody");
    if (!body) return;
    $("#panel-runs .empty").hidden = state.jobs.length > 0;
    body.replaceChildren(...state.jobs.map((job, i) => {
      const box = el("input", { type: "checkbox", checked: state.compare.has(job.id), title: S("compare") });
      box.addEventListener("change", () => { box.checked ? state.compare.add(job.id) : state.compare.delete(job.id); follow(); drawCharts(); showEval(); });
      const row = el("tr", {}, el("td", {}, box), el("td", { className: "id" }, job.id), el("td", {}, job.verb), el("td", { className: "state " + job.state }, S("state_" + job.state)));
      row.dataset.job = job.id;
      row.dataset.state = job.state;
      if (job.id === state.selected) row.classList.add("selected");
      row.addEventListener("click", (e) => { if (e.target !== box) selectJob(job.id); });
      return row;
    }));
    document.body.dataset.jobs = String(state.jobs.length);
    showJob();
  }

  function selectJob(id) {
    state.selected = id;
    for (const row of document.querySelectorAll("#panel-runs tbody tr")) row.classList.toggle("selected", row.dataset.job === id);
    follow();
    showJob();
    refreshLog();
    drawCharts();
    showEval();
  }

  function showJob() {
    const job = selectedJob(), panel = $("#panel-runs");
    if (!panel) return;
    $(".pick", panel).hidden = !!job;
    $(".job", panel).hidden = !job;
    if (!job) return;
    $(".job", panel).dataset.state = job.state;
    $(".job-command", panel).textContent = job.command;
    $(".run-dir", panel).textContent = job.run_directory || "—";
    $(".tb", panel).textContent = job.tensorboard ? `tensorboard --logdir ${job.tensorboard}` : "—";
    $(".ckpt", panel).textContent = job.last_checkpoint || "—";
    // Eval, export, deploy, chat and hub jobs have no run folder: their empty rows are left out.
    for (const node of panel.querySelectorAll(".train-only")) node.hidden = !trains(job);
    const running = job.state === "running" || job.state === "stopping";
    $(".stop", panel).disabled = job.state !== "running";
    $(".resume", panel).disabled = running || !job.last_checkpoint;
    $(".delete", panel).disabled = running;
    $(".chat-with", panel).hidden = $(".merge", panel).hidden = !job.last_checkpoint;
    // An eval job that has just finished: its report is there now.
    if (job.verb === "eval" && !state.reports[job.id] && !running) showEval();
  }

  async function jobAction(action) {
    const job = selectedJob(), box = $("#panel-runs .job-error");
    if (!job) return;
    box.hidden = true;
    try {
      if (action === "delete") {
        if (!window.OSPREY_NO_CONFIRM && !confirm(S("confirm_delete", { id: job.id }))) return;
        await api(`/api/jobs/${job.id}`, { method: "DELETE" });
        state.compare.delete(job.id);
        state.selected = null;
      } else {
        const result = await post(`/api/jobs/${job.id}/${action}`, {});
        if (action === "resume") state.selected = result.id;
      }
    } catch (e) {
      box.textContent = e.message;
      box.hidden = false;
    }
    await refreshJobs();
    selectJob(state.selected);
  }

  async function refreshLog() {
    const job = selectedJob();
    if (!job || state.tab !== "runs") return;
    try {
      const text = await api(`/api/jobs/${job.id}/log?lines=300`);
      const pre = $("#panel-runs .log");
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      pre.textContent = typeof text === "string" ? text : JSON.stringify(text);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (_) { /* shown on the next refresh */ }
  }

  // logging.jsonl of the selected and compared jobs, streamed as server-sent events.
  function follow() {
    const wanted = new Set([...state.compare, state.selected].filter(Boolean));
    for (const [id, source] of Object.entries(state.streams)) if (!wanted.has(id)) { source.close(); delete state.streams[id]; }
    for (const id of wanted) {
      if (state.streams[id]) continue;
      state.metrics[id] = [];
      const source = new EventSource(`/api/jobs/${id}/metrics`);
      source.onmessage = (e) => { state.metrics[id].push(JSON.parse(e.data)); scheduleDraw(); };
      source.addEventListener("reset", () => { state.metrics[id] = []; });
      source.addEventListener("end", () => { source.close(); });
      state.streams[id] = source;
    }
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; drawCharts(); });
  }

  function drawCharts() {
    const holder = $("#panel-runs .charts");
    if (!holder || state.tab !== "runs") return;
    const ids = [...new Set([state.selected, ...state.compare].filter(Boolean))];
    const ordered = window.OspreyCharts.chartKeys(ids.flatMap((id) => state.metrics[id] || []));
    $("#panel-runs .no-points").hidden = ordered.length > 0;
    // The charts section is for runs that log steps: a job that never will (an evaluation, an export) shows none,
    // rather than an empty "no logged steps" area under its results. A compared training run brings it back.
    const job = selectedJob();
    $("#panel-runs .chart-box").hidden = ordered.length === 0 && !(job && trains(job));
    for (const canvas of [...holder.children]) if (!ordered.includes(canvas.dataset.key)) canvas.remove();
    for (const key of ordered) {
      let canvas = holder.querySelector(`canvas[data-key="${CSS.escape(key)}"]`);
      if (!canvas) { canvas = el("canvas"); canvas.dataset.key = key; holder.append(canvas); }
      const series = ids.map((id, i) => ({
        name: id, color: window.OspreyCharts.COLORS[i % 8],
        points: (state.metrics[id] || []).filter((r) => typeof r[key] === "number" && typeof r.global_step === "number").map((r) => [r.global_step, r[key]]),
      }));
      window.OspreyCharts.draw(canvas, key, series);
    }
  }

  // ---------- evaluation: report.json of eval jobs, as a table and bars; compared runs side by side ----------
  async function evalReport(job) {
    // A finished run's report does not change; a running one has none yet.
    if (state.reports[job.id]) return state.reports[job.id];
    if (job.state === "running" || job.state === "stopping") return null;
    try { state.reports[job.id] = await api(`/api/jobs/${job.id}/eval`); } catch (_) { return null; }
    return state.reports[job.id];
  }

  async function showEval() {
    const box = $("#panel-runs .eval");
    if (!box) return;
    const ids = [...new Set([state.selected, ...state.compare].filter(Boolean))];
    const jobs = ids.map((id) => state.jobs.find((j) => j.id === id)).filter((j) => j && j.verb === "eval");
    const reports = [];
    for (const job of jobs) { const r = await evalReport(job); if (r && Array.isArray(r.rows)) reports.push({ job, report: r }); }
    box.hidden = reports.length === 0;
    box.dataset.runs = String(reports.length);
    if (reports.length === 0) return;
    // One row per (dataset, metric, level, group) over all compared reports, in the first report's order.
    const rowKey = (r) => [r.dataset, r.metric, r.level, r.group].join("\u0000");
    const rows = new Map();
    for (const { report } of reports) for (const r of report.rows) if (!rows.has(rowKey(r))) rows.set(rowKey(r), r);
    const groupText = (r) => (r.level === "overall" ? S("overall") : r.level === "category" ? `[${r.group}]` : r.group);
    const runName = ({ job, report }) => `${report.model} (${job.id})`;
    $(".eval-note", box).textContent = reports.length > 1 ? S("eval_compare", { n: reports.length }) : "";
    $(".eval-table thead", box).replaceChildren(el("tr", {}, ...[S("eval_dataset"), S("eval_metric"), S("eval_subset"), S("eval_num"), ...reports.map(runName)]
      .map((t, i) => el("th", { className: i >= 3 ? "num" : "" }, t))));
    $(".eval-table tbody", box).replaceChildren(...[...rows.values()].map((r) => {
      const cells = reports.map(({ report }) => {
        const mine = report.rows.find((x) => rowKey(x) === rowKey(r));
        return el("td", { className: "num score" }, mine ? Number(mine.score).toFixed(4) : "—");
      });
      const tr = el("tr", { className: "level-" + r.level }, el("td", {}, r.dataset), el("td", {}, r.metric), el("td", {}, groupText(r)), el("td", { className: "num" }, String(r.num)), ...cells);
      tr.dataset.group = r.group;
      tr.dataset.metric = r.metric;
      return tr;
    }));
    const labels = [...rows.values()].map((r) => `${r.metric} ${groupText(r)}`);
    const series = reports.map((entry, i) => ({
      name: runName(entry), color: window.OspreyCharts.COLORS[i % 8],
      values: [...rows.values()].map((r) => { const mine = entry.report.rows.find((x) => rowKey(x) === rowKey(r)); return mine ? Number(mine.score) : NaN; }),
    }));
    window.OspreyCharts.bars($(".eval-chart", box), S("eval_results"), labels, series);
  }

  // ---------- chat: osprey app jobs behind /api/jobs/ID/proxy/ ----------
  function buildChat() {
    const panel = el("section", { className: "panel chat" });
    panel.innerHTML = `
      <div class="chat-top">
        <div class="chat-side" data-side="0"></div>
        <div class="chat-side" data-side="1" hidden></div>
      </div>
      <label class="check"><input type="checkbox" class="side-by-side"> <span data-i18n="chat_side"></span></label>
      <form class="both" hidden><label><span data-i18n="chat_prompt"></span><textarea rows="2" class="both-text"></textarea></label>
        <button type="submit" data-i18n="chat_both"></button></form>`;
    for (const side of panel.querySelectorAll(".chat-side")) {
      side.innerHTML = `
        <form class="chat-load">
          <label><span data-i18n="chat_model"></span><input class="chat-model" spellcheck="false"></label>
          <label><span data-i18n="chat_adapters"></span><input class="chat-adapters" list="checkpoints" spellcheck="false"></label>
          <div class="buttons"><button type="submit" class="primary" data-i18n="chat_load"></button><button type="button" class="chat-unload" data-i18n="chat_unload" hidden></button></div>
        </form>
        <p class="chat-status" role="status"></p>
        <iframe class="chat-frame" title="chat" hidden></iframe>`;
      $(".chat-load", side).addEventListener("submit", (e) => { e.preventDefault(); loadChat(side); });
      $(".chat-unload", side).addEventListener("click", () => unloadChat(side));
    }
    panel.append(el("datalist", { id: "checkpoints" }));
    $(".side-by-side", panel).addEventListener("change", (e) => {
      panel.querySelector('[data-side="1"]').hidden = !e.target.checked;
      $(".both", panel).hidden = !e.target.checked;
      panel.classList.toggle("two", e.target.checked);
    });
    $(".both", panel).addEventListener("submit", (e) => { e.preventDefault(); sendBoth(panel); });
    return panel;
  }

  async function loadChat(side) {
    const status = $(".chat-status", side);
    const values = { };
    const model = $(".chat-model", side).value.trim(), adapters = $(".chat-adapters", side).value.trim();
    if (model) values.model = model;
    if (adapters) values.adapters = [adapters];
    try {
      await unloadChat(side);
      const job = await post("/api/jobs", { verb: "app", values });
      side.dataset.job = job.id;
      status.textContent = S("chat_loading", { id: job.id });
      await refreshJobs();
      for (let i = 0; i < 600; i++) {
        const health = await fetch(`/api/jobs/${job.id}/proxy/health`).catch(() => null);
        if (health && health.ok) break;
        const now = await api(`/api/jobs/${job.id}`);
        if (now.state !== "running") throw new Error((await api(`/api/jobs/${job.id}/log?lines=5`)).toString());
        await new Promise((r) => setTimeout(r, 500));
      }
      // The server lists the base model first and each adapter with the base as its parent: with an adapter asked
      // for, the embedded page must talk to the adapter, not to the base.
      let pick = "";
      if (adapters) {
        const listed = await api(`/api/jobs/${job.id}/proxy/v1/models`);
        const adapter = listed.data.find((m) => m.parent);
        if (!adapter) throw new Error(S("chat_no_adapter", { id: job.id }));
        pick = adapter.id;
      }
      side.dataset.model = pick;
      const frame = $(".chat-frame", side);
      frame.src = `/api/jobs/${job.id}/proxy/` + (pick ? `?model=${encodeURIComponent(pick)}` : "");
      frame.hidden = false;
      $(".chat-unload", side).hidden = false;
      status.textContent = S("chat_ready", { id: job.id }) + (pick ? " " + S("chat_adapter", { name: pick }) : "");
      side.dataset.ready = "true";
    } catch (e) {
      status.textContent = e.message;
    }
  }

  async function unloadChat(side) {
    const id = side.dataset.job;
    if (!id) return;
    delete side.dataset.job;
    delete side.dataset.ready;
    $(".chat-frame", side).hidden = true;
    $(".chat-frame", side).src = "about:blank";
    $(".chat-unload", side).hidden = true;
    try { await post(`/api/jobs/${id}/stop`, {}); } catch (_) { /* already ended */ }
  }

  // The embedded chat pages share this page's origin, so one prompt can be typed into both.
  function sendBoth(panel) {
    const text = $(".both-text", panel).value;
    for (const frame of panel.querySelectorAll(".chat-side:not([hidden]) .chat-frame:not([hidden])")) {
      const doc = frame.contentDocument;
      if (!doc || !doc.getElementById("input")) continue;
      doc.getElementById("input").value = text;
      doc.getElementById("composer").requestSubmit();
    }
  }

  function chatWith(job) {
    if (!job || !job.last_checkpoint) return;
    const side = $('#panel-chat .chat-side[data-side="0"]');
    $(".chat-model", side).value = "";
    $(".chat-adapters", side).value = job.run_directory && job.verb !== "pt" && !(job.values.train_type || []).includes("full") ? job.last_checkpoint : "";
    if (!$(".chat-adapters", side).value) $(".chat-model", side).value = job.last_checkpoint;
    showTab("chat");
    loadChat(side);
  }

  function mergeExport(job) {
    const form = state.panels.export;
    if (!job || !form) return;
    showTab("export");
    setValues(form, { adapters: job.last_checkpoint, merge_lora: "true" });
  }

  // ---------- GPU meters, language, key ----------
  async function meters() {
    let gpus = [];
    try { gpus = await api("/api/gpus"); } catch (_) { return; }
    const box = $("#meters");
    box.replaceChildren(...(gpus.length === 0 ? [el("span", { className: "cpu" }, S("no_gpu"))] : gpus.map((g) => {
      const used = g.used_bytes / 2 ** 30, total = g.total_bytes / 2 ** 30;
      const meter = el("meter", { min: 0, max: total, value: used, high: total * 0.9 });
      const busy = g.utilization_percent == null ? [] : [" ", el("meter", { className: "busy", min: 0, max: 100, value: g.utilization_percent, title: S("gpu_busy") }), ` ${g.utilization_percent}%`];
      return el("span", { className: "gpu", title: g.name }, `${S("gpu", { i: g.index })} `, meter, ` ${used.toFixed(1)}/${total.toFixed(0)} GiB`, ...busy);
    })));
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    $("#lang").value = lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = S(node.dataset.i18n);
    for (const form of new Set(Object.values(state.panels))) {
      const more = $(".more > summary", form.panel);
      if (more) more.textContent = S("more_flags", { n: $(".rest", form.panel).children.length });
    }
    refreshJobs();
    meters();
  }

  async function main() {
    $("#keyform").addEventListener("submit", (e) => {
      e.preventDefault();
      document.cookie = `osprey_key=${encodeURIComponent($("#key").value)}; path=/; SameSite=Strict`;
      location.reload();
    });
    try { state.info = await api("/api/info"); } catch (e) { document.body.dataset.error = e.message; return; }
    if (!localStorage.getItem("osprey-lang")) lang = state.info.lang;
    $("#lang").addEventListener("change", (e) => { lang = e.target.value; localStorage.setItem("osprey-lang", lang); applyLanguage(); });
    buildTabs();
    applyLanguage();
    const first = location.hash.slice(1);
    showTab(document.getElementById("panel-" + first) ? first : "train");
    setInterval(async () => {
      await refreshJobs();
      refreshLog();
      const list = $("#checkpoints");
      if (list) list.replaceChildren(...state.jobs.filter((j) => j.last_checkpoint).map((j) => new Option(j.last_checkpoint, j.last_checkpoint)));
    }, 1500);
    setInterval(meters, 5000);
    window.addEventListener("resize", () => { scheduleDraw(); showEval(); });
    document.body.dataset.ready = "true";
  }

  main();
})();
