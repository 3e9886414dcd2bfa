using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The handlers of /v1/chat/completions and /v1/completions.</summary>
internal sealed class Endpoints(ServedModel model, CancellationToken stopping)
{
    static readonly byte[] s_data = "data: "u8.ToArray();
    static readonly byte[] s_end = "\n\n"u8.ToArray();
    static readonly byte[] s_done = "data: [DONE]\n\n"u8.ToArray();
    const int MaxChoices = 64;

    /// <summary>What a parsed request asks for, common to both routes.</summary>
    sealed record Parsed(string ModelName, string? Adapter, SamplingParams Sampling, int N, bool Stream, bool IncludeUsage, bool Logprobs, int TopLogprobs);

    static async Task<JsonElement> ReadBody(HttpContext context)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ApiException.Bad($"The request body is not valid JSON: {e.Message}");
        }
    }

    Parsed ReadCommon(RequestFields f, bool chat)
    {
        var name = f.String("model");
        string? adapter = model.AdapterFor(name);
        var maxTokens = (chat ? f.Int("max_completion_tokens", 1) : null) ?? f.Int("max_tokens", 1);
        var n = f.Int("n", 1, MaxChoices) ?? 1;
        var stream = f.Bool("stream") ?? false;
        var includeUsage = false;
        if (f.Get("stream_options") is { } so)
        {
            if (so.ValueKind != JsonValueKind.Object) throw ApiException.Bad("'stream_options' must be an object.", "stream_options");
            var sf = new RequestFields(so);
            includeUsage = sf.Bool("include_usage") ?? false;
            if (!stream && includeUsage) throw ApiException.Bad("'stream_options' applies only when 'stream' is true.", "stream_options");
        }
        bool logprobs;
        int top;
        if (chat)
        {
            logprobs = f.Bool("logprobs") ?? false;
            top = f.Int("top_logprobs", 0, SamplingParams.MaxTopLogprobs) ?? 0;
            if (f.Get("top_logprobs") is not null && !logprobs) throw ApiException.Bad("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs");
        }
        else
        {
            var k = f.Int("logprobs", 0, SamplingParams.MaxTopLogprobs);
            logprobs = k is not null;
            top = k ?? 0;
        }
        var logitBias = LogitBias(f);
        var sampling = model.Sampling(maxTokens, f.Double("temperature"), f.Double("top_p"), f.Int("top_k", -1),
            f.Double("repetition_penalty"), f.Long("seed"), f.Strings("stop"), logprobs ? top : null, f.Bool("ignore_eos") ?? false,
            f.Double("presence_penalty"), f.Double("frequency_penalty"), logitBias);
        sampling.Validate();
        return new Parsed(name ?? model.Name, adapter, sampling, n, stream, includeUsage, logprobs, top);
    }

    /// <summary>OpenAI's logit_bias: an object whose keys are token ids (as strings) and whose values are numbers.</summary>
    static Dictionary<int, double>? LogitBias(RequestFields f)
    {
        if (f.Get("logit_bias") is not { } v || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Object) throw ApiException.Bad("'logit_bias' must be an object mapping token ids to numbers.", "logit_bias");
        var bias = new Dictionary<int, double>();
        foreach (var p in v.EnumerateObject())
        {
            if (!int.TryParse(p.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var token))
                throw ApiException.Bad($"'logit_bias' keys must be token ids, got '{p.Name}'.", "logit_bias");
            if (p.Value.ValueKind != JsonValueKind.Number) throw ApiException.Bad($"'logit_bias' value for token {token} must be a number.", "logit_bias");
            bias[token] = p.Value.GetDouble();
        }
        return bias.Count == 0 ? null : bias;
    }

    static IReadOnlyList<EngineRequest> Requests(IReadOnlyList<int[]> prompts, Parsed p)
    {
        var list = new List<EngineRequest>();
        foreach (var prompt in prompts)
            for (var i = 0; i < p.N; i++)
                list.Add(new EngineRequest(prompt, p.Sampling.Seed is { } s ? p.Sampling with { Seed = s + i } : p.Sampling, p.Adapter));
        return list;
    }

    CancellationToken Token(HttpContext context, out CancellationTokenSource linked)
    {
        linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        return linked.Token;
    }

    // ---------------------------------------------------------------- chat

    public async Task Chat(HttpContext context)
    {
        var f = new RequestFields(await ReadBody(context).ConfigureAwait(false));
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } messagesJson || messagesJson.GetArrayLength() == 0)
            throw ApiException.Bad("'messages' must be a non-empty list of messages.", "messages");
        var p = ReadCommon(f, chat: true);
        var messages = Messages(messagesJson);
        var tools = Tools(f);
        int[] prompt;
        try
        {
            prompt = model.EncodeChat(messages, tools);
        }
        catch (OspreyException e) when (e is not EngineException)
        {
            throw ApiException.Bad($"The messages could not be rendered with the chat template: {e.Message}", "messages");
        }
        var requests = Requests([prompt], p);
        var token = Token(context, out var linked);
        using var _ = linked;
        await using var group = RequestGroup.Submit(model.Engine, requests, token);
        var choices = requests.Select((r, i) => new ChoiceState(i, prompt.Length) { Tools = tools is null ? null : new ToolCallStream() }).ToArray();
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (p.Stream) await StreamChat(context, group, choices, p, id, created, token).ConfigureAwait(false);
        else
        {
            await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false)) Accumulate(choices[i], u);
            await WriteJson(context, w => WriteChatResponse(w, choices, p, id, created)).ConfigureAwait(false);
        }
    }

    static void Accumulate(ChoiceState c, EngineUpdate u)
    {
        c.Text.Append(u.TextDelta);
        if (u.Token is not null) c.Tokens.Add(u.Token);
        c.PromptTokens = u.PromptTokens;
        c.CompletionTokens = u.CompletionTokens;
        if (u.Finish is not null) c.Finish = u.Finish;
    }

    /// <summary>Messages as the template engine takes them; content-part lists become their joined text.</summary>
    static List<object?> Messages(JsonElement array)
    {
        var list = new List<object?>();
        var i = 0;
        foreach (var m in array.EnumerateArray())
        {
            var param = $"messages[{i}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiException.Bad($"'{param}' must be an object with a role and content.", param);
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw ApiException.Bad($"'{param}.role' must be a string (system, user, assistant or tool).", param + ".role");
            if (m.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Array)
            {
                var text = new StringBuilder();
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                        throw ApiException.Bad($"'{param}.content' parts must be objects with a \"type\".", param + ".content");
                    if (type.GetString() != "text")
                        throw ApiException.Bad($"'{param}.content' has a part of type '{type.GetString()}'; this server takes text only.", param + ".content");
                    if (!part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                        throw ApiException.Bad($"'{param}.content' text parts need a string \"text\".", param + ".content");
                    text.Append(t.GetString());
                }
                var node = JsonNode.Parse(m.GetRawText())!.AsObject();
                node["content"] = text.ToString();
                using var doc = JsonDocument.Parse(node.ToJsonString());
                list.Add(doc.RootElement.Clone());
            }
            else if (m.TryGetProperty("content", out content) && content.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            {
                throw ApiException.Bad($"'{param}.content' must be a string or a list of content parts.", param + ".content");
            }
            else
            {
                list.Add(m);
            }
            i++;
        }
        return list;
    }

    /// <summary>The tools the template sees: none with tool_choice "none"; only the named one for a forced function.</summary>
    static List<object?>? Tools(RequestFields f)
    {
        if (f.Get("tools") is not { } tools) return null;
        if (tools.ValueKind != JsonValueKind.Array) throw ApiException.Bad("'tools' must be a list of tool objects.", "tools");
        var list = new List<object?>();
        foreach (var t in tools.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object) throw ApiException.Bad("'tools' must be a list of tool objects.", "tools");
            list.Add(t);
        }
        if (list.Count == 0) return null;
        switch (f.Get("tool_choice"))
        {
            case null:
                return list;
            case { ValueKind: JsonValueKind.String } s when s.GetString() is "auto" or "required":
                return list;
            case { ValueKind: JsonValueKind.String } s when s.GetString() == "none":
                return null;
            case { ValueKind: JsonValueKind.Object } o when o.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object
                && fn.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String:
                var name = n.GetString();
                var chosen = list.Where(t => t is JsonElement e && e.TryGetProperty("function", out var tf) && tf.ValueKind == JsonValueKind.Object
                    && tf.TryGetProperty("name", out var tn) && tn.ValueKind == JsonValueKind.String && tn.GetString() == name).ToList();
                if (chosen.Count == 0) throw ApiException.Bad($"'tool_choice' names function '{name}', which is not in 'tools'.", "tool_choice");
                return chosen;
            default:
                throw ApiException.Bad("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice");
        }
    }

    void WriteChatResponse(Utf8JsonWriter w, ChoiceState[] choices, Parsed p, string id, long created)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created);
        w.WriteString("model", p.ModelName);
        w.WriteStartArray("choices");
        foreach (var c in choices)
        {
            var text = c.Text.ToString();
            string? content = text;
            IReadOnlyList<ToolCall> calls = [];
            if (c.Tools is not null) (content, calls) = ToolCallReply.Parse(text);
            w.WriteStartObject();
            w.WriteNumber("index", c.Index);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            if (content is null) w.WriteNull("content"); else w.WriteString("content", content);
            if (calls.Count > 0) WriteToolCalls(w, calls, withIndex: false);
            w.WriteEndObject();
            if (p.Logprobs)
            {
                w.WriteStartObject("logprobs");
                w.WritePropertyName("content");
                WriteChatLogprobs(w, c.Tokens, p.TopLogprobs);
                w.WriteEndObject();
            }
            else w.WriteNull("logprobs");
            w.WriteString("finish_reason", calls.Count > 0 ? "tool_calls" : c.Finish ?? "length");
            w.WriteEndObject();
        }
        w.WriteEndArray();
        WriteUsage(w, choices);
        w.WriteEndObject();
    }

    static void WriteToolCalls(Utf8JsonWriter w, IReadOnlyList<ToolCall> calls, bool withIndex)
    {
        w.WriteStartArray("tool_calls");
        for (var i = 0; i < calls.Count; i++)
        {
            w.WriteStartObject();
            if (withIndex) w.WriteNumber("index", i);
            w.WriteString("id", calls[i].Id);
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", calls[i].Name);
            w.WriteString("arguments", calls[i].Arguments);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    string TokenText(int id) => model.Tokenizer.Decode([id]);

    void WriteChatLogprobs(Utf8JsonWriter w, IEnumerable<GeneratedToken> tokens, int top)
    {
        w.WriteStartArray();
        foreach (var t in tokens)
        {
            WriteTokenLogprob(w, t.TokenId, t.Logprob, () =>
            {
                w.WriteStartArray("top_logprobs");
                if (t.Top is not null)
                    foreach (var alt in t.Top.Take(top))
                        WriteTokenLogprob(w, alt.TokenId, alt.Logprob, null);
                w.WriteEndArray();
            });
        }
        w.WriteEndArray();
    }

    void WriteTokenLogprob(Utf8JsonWriter w, int id, float logprob, Action? more)
    {
        var s = TokenText(id);
        w.WriteStartObject();
        w.WriteString("token", s);
        w.WriteNumber("logprob", logprob);
        w.WriteStartArray("bytes");
        foreach (var b in Encoding.UTF8.GetBytes(s)) w.WriteNumberValue(b);
        w.WriteEndArray();
        more?.Invoke();
        w.WriteEndObject();
    }

    /// <summary>usage: each prompt's tokens once (however many choices it has), the completion tokens of every choice.</summary>
    static void WriteUsage(Utf8JsonWriter w, ChoiceState[] choices)
    {
        var prompt = PromptTotal(choices);
        var completion = choices.Sum(c => c.CompletionTokens);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }

    /// <summary>Each prompt's tokens once, however many choices it has.</summary>
    static int PromptTotal(ChoiceState[] choices) => choices.GroupBy(c => c.Group).Sum(g => g.First().PromptTokens);

    async Task StreamChat(HttpContext context, RequestGroup group, ChoiceState[] choices, Parsed p, string id, long created, CancellationToken token)
    {
        StartSse(context);
        foreach (var c in choices)
            await WriteChunk(context, w => ChatChunk(w, id, created, p, c.Index, w2 => { w2.WriteString("role", "assistant"); w2.WriteString("content", ""); }, null, null, p.IncludeUsage), token).ConfigureAwait(false);
        try
        {
            await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false))
            {
                var c = choices[i];
                Accumulate(c, u);
                var delta = c.Tools is null ? u.TextDelta : c.Tools.Add(u.TextDelta);
                var tokens = p.Logprobs && u.Token is not null ? new[] { u.Token } : null;
                if (delta.Length > 0 || tokens is not null)
                    await WriteChunk(context, w => ChatChunk(w, id, created, p, i, w2 => { if (delta.Length > 0) w2.WriteString("content", delta); }, tokens, null, p.IncludeUsage), token).ConfigureAwait(false);
                if (u.Finish is null) continue;
                string? rest = null;
                IReadOnlyList<ToolCall> calls = [];
                if (c.Tools is not null) (rest, calls) = ToolCallReply.Finish(c.Tools);
                var finish = calls.Count > 0 ? "tool_calls" : u.Finish;
                await WriteChunk(context, w => ChatChunk(w, id, created, p, i, w2 =>
                {
                    if (rest is not null) w2.WriteString("content", rest);
                    if (calls.Count > 0) WriteToolCalls(w2, calls, withIndex: true);
                }, null, finish, p.IncludeUsage), token).ConfigureAwait(false);
            }
        }
        catch (EngineException e)
        {
            await WriteSseError(context, Map(e), token).ConfigureAwait(false);
            return;
        }
        if (p.IncludeUsage)
            await WriteChunk(context, w =>
            {
                ChunkHeader(w, id, created, p);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, choices);
                w.WriteEndObject();
            }, token).ConfigureAwait(false);
        await context.Response.Body.WriteAsync(s_done, token).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
    }

    /// <summary>Opens a chat.completion.chunk object: id, object, created, model.</summary>
    static void ChunkHeader(Utf8JsonWriter w, string id, long created, Parsed p)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", p.ModelName);
    }

    void ChatChunk(Utf8JsonWriter w, string id, long created, Parsed p, int index, Action<Utf8JsonWriter> delta, GeneratedToken[]? tokens, string? finish, bool usageNull)
    {
        ChunkHeader(w, id, created, p);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        if (tokens is not null)
        {
            w.WriteStartObject("logprobs");
            w.WritePropertyName("content");
            WriteChatLogprobs(w, tokens, p.TopLogprobs);
            w.WriteEndObject();
        }
        else w.WriteNull("logprobs");
        if (finish is null) w.WriteNull("finish_reason"); else w.WriteString("finish_reason", finish);
        w.WriteEndObject();
        w.WriteEndArray();
        if (usageNull) w.WriteNull("usage");
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- completions

    public async Task Completions(HttpContext context)
    {
        var f = new RequestFields(await ReadBody(context).ConfigureAwait(false));
        var prompts = Inputs(f, "prompt");
        f.Unsupported("echo", v => v.ValueKind == JsonValueKind.False);
        f.Unsupported("suffix", v => v.ValueKind == JsonValueKind.String && v.GetString()!.Length == 0);
        f.Unsupported("best_of", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 1);
        var p = ReadCommon(f, chat: false);
        if (prompts.Count * p.N > MaxChoices) throw ApiException.Bad($"prompts times 'n' must be {MaxChoices} at most, got {prompts.Count * p.N}.", "n");
        var requests = Requests(prompts, p);
        var token = Token(context, out var linked);
        using var _ = linked;
        await using var group = RequestGroup.Submit(model.Engine, requests, token);
        var choices = requests.Select((r, i) => new ChoiceState(i, r.PromptIds.Count) { Group = i / p.N }).ToArray();
        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (p.Stream)
        {
            StartSse(context);
            try
            {
                await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false))
                {
                    var c = choices[i];
                    var offset = c.Text.Length;
                    Accumulate(c, u);
                    if (u.TextDelta.Length == 0 && u.Finish is null && !(p.Logprobs && u.Token is not null)) continue;
                    await WriteChunk(context, w => CompletionObject(w, id, created, p, [(c, u.TextDelta, u.Token is null ? [] : [u.Token], offset, u.Finish)], usage: null, usageNull: p.IncludeUsage), token).ConfigureAwait(false);
                }
            }
            catch (EngineException e)
            {
                await WriteSseError(context, Map(e), token).ConfigureAwait(false);
                return;
            }
            if (p.IncludeUsage)
                await WriteChunk(context, w => CompletionObject(w, id, created, p, [], choices, usageNull: false), token).ConfigureAwait(false);
            await context.Response.Body.WriteAsync(s_done, token).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
            return;
        }
        await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false)) Accumulate(choices[i], u);
        await WriteJson(context, w => CompletionObject(w, id, created, p,
            choices.Select(c => (c, c.Text.ToString(), (IReadOnlyList<GeneratedToken>)c.Tokens, 0, (string?)(c.Finish ?? "length"))).ToList(), choices, usageNull: false)).ConfigureAwait(false);
    }

    /// <summary>The prompt(s): a string, a list of strings, a list of token ids, or a list of token-id lists.</summary>
    IReadOnlyList<int[]> Inputs(RequestFields f, string field)
    {
        var shape = $"'{field}' must be a string, a list of strings, a list of token ids, or a list of token-id lists.";
        if (f.Get(field) is not { } v) throw ApiException.Bad($"'{field}' is required.", field);
        if (v.ValueKind == JsonValueKind.String) return [model.EncodeText(v.GetString()!)];
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0) throw ApiException.Bad(shape, field);
        var first = v[0].ValueKind;
        if (first == JsonValueKind.Number) return [Ids(v)];
        var list = new List<int[]>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != first) throw ApiException.Bad(shape, field);
            list.Add(e.ValueKind switch
            {
                JsonValueKind.String => model.EncodeText(e.GetString()!),
                JsonValueKind.Array => Ids(e),
                _ => throw ApiException.Bad(shape, field),
            });
        }
        if (list.Count > MaxChoices) throw ApiException.Bad($"'{field}' holds {list.Count} entries; send {MaxChoices} at most per request.", field);
        return list;

        int[] Ids(JsonElement array)
        {
            var ids = new int[array.GetArrayLength()];
            var i = 0;
            foreach (var e in array.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i++])) throw ApiException.Bad($"'{field}' token ids must be integers.", field);
            }
            return ids;
        }
    }

    void CompletionObject(Utf8JsonWriter w, string id, long created, Parsed p,
        IReadOnlyList<(ChoiceState C, string Text, IReadOnlyList<GeneratedToken> Tokens, int Offset, string? Finish)> items, ChoiceState[]? usage, bool usageNull)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "text_completion");
        w.WriteNumber("created", created);
        w.WriteString("model", p.ModelName);
        w.WriteStartArray("choices");
        foreach (var (c, text, tokens, offset, finish) in items)
        {
            w.WriteStartObject();
            w.WriteNumber("index", c.Index);
            w.WriteString("text", text);
            if (p.Logprobs) WriteLegacyLogprobs(w, tokens, p.TopLogprobs, offset);
            else w.WriteNull("logprobs");
            if (finish is null) w.WriteNull("finish_reason"); else w.WriteString("finish_reason", finish);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (usage is not null) WriteUsage(w, usage);
        else if (usageNull) w.WriteNull("usage");
        w.WriteEndObject();
    }

    void WriteLegacyLogprobs(Utf8JsonWriter w, IReadOnlyList<GeneratedToken> tokens, int top, int offset)
    {
        var texts = tokens.Select(t => TokenText(t.TokenId)).ToList();
        w.WriteStartObject("logprobs");
        w.WriteStartArray("tokens");
        foreach (var s in texts) w.WriteStringValue(s);
        w.WriteEndArray();
        w.WriteStartArray("token_logprobs");
        foreach (var t in tokens) w.WriteNumberValue(t.Logprob);
        w.WriteEndArray();
        w.WriteStartArray("top_logprobs");
        foreach (var t in tokens)
        {
            w.WriteStartObject();
            if (t.Top is not null)
                foreach (var alt in t.Top.Take(top))
                {
                    var s = TokenText(alt.TokenId);
                    w.WriteNumber(s, alt.Logprob);
                }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("text_offset");
        var at = offset;
        foreach (var s in texts)
        {
            w.WriteNumberValue(at);
            at += s.Length;
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- embeddings

    /// <summary>/v1/embeddings: the mean-pooled final hidden state of each input (base model only).</summary>
    public async Task Embeddings(HttpContext context)
    {
        var f = new RequestFields(await ReadBody(context).ConfigureAwait(false));
        var name = f.String("model");
        if (model.AdapterFor(name) is not null) throw ApiException.Bad($"'{name}' is a LoRA adapter; embeddings come from the base model '{model.Name}'.", "model");
        var format = f.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64")) throw ApiException.Bad($"'encoding_format' must be \"float\" or \"base64\", got \"{format}\".", "encoding_format");
        var hidden = model.Engine.Model.Spec.HiddenSize;
        if (f.Int("dimensions", 1) is { } dims && dims != hidden) throw ApiException.Bad($"'dimensions' must be this model's hidden size {hidden} (or left out), got {dims}.", "dimensions");
        if (f.Get("input") is null) throw ApiException.Bad("'input' is required.", "input");
        var inputs = Inputs(f, "input");
        var token = Token(context, out var linked);
        using var _ = linked;
        var vectors = await Task.WhenAll(inputs.Select(ids => model.Engine.EmbedAsync(ids, token))).ConfigureAwait(false);
        await WriteJson(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (var i = 0; i < vectors.Length; i++)
            {
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (format == "base64")
                {
                    w.WriteString("embedding", Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vectors[i].AsSpan())));
                }
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (var v in vectors[i]) w.WriteNumberValue(v);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("model", name ?? model.Name);
            var tokens = inputs.Sum(x => x.Length);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- output helpers

    internal static ApiException Map(EngineException e, string? promptField = "messages") => e.Kind switch
    {
        EngineErrorKind.InvalidRequest => new ApiException(400, e.Message),
        EngineErrorKind.PromptTooLong => new ApiException(400, e.Message, promptField, "context_length_exceeded"),
        EngineErrorKind.UnknownModel => new ApiException(404, e.Message, "model", "model_not_found"),
        EngineErrorKind.QueueFull => new ApiException(429, e.Message, null, "queue_full"),
        _ => new ApiException(503, e.Message, null, "unavailable"),
    };

    static async Task WriteJson(HttpContext context, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, ApiErrors.JsonOptions)) write(w);
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    static void StartSse(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
    }

    static async Task WriteChunk(HttpContext context, Action<Utf8JsonWriter> write, CancellationToken token)
    {
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write(s_data);
        using (var w = new Utf8JsonWriter(buffer, ApiErrors.JsonOptions)) write(w);
        buffer.Write(s_end);
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, token).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
    }

    static Task WriteSseError(HttpContext context, ApiException e, CancellationToken token)
    {
        if (!context.Response.HasStarted)
        {
            return ApiErrors.WriteAsync(context, e);
        }
        return WriteChunk(context, w => ApiErrors.WriteBody(w, e.Message, e.Type, e.Param, e.Code), token);
    }
}
