using Osprey.Inference;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;
using static Osprey.Server.ChatCompletionJson;

namespace Osprey.Server;

/// <summary>POST /v1/chat/completions: a conversation through the chat template, answered whole or streamed.</summary>
internal sealed class ChatCompletionsRoute(ServedModel model, CancellationToken stopping)
{
    public async Task Handle(HttpContext context)
    {
        var f = new RequestFields(await HttpJson.ReadBody(context).ConfigureAwait(false));
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } messagesJson || messagesJson.GetArrayLength() == 0)
            throw ApiException.Bad("'messages' must be a non-empty list of messages.", "messages");
        var p = GenerationRequest.Read(f, model, chat: true);
        var images = model.Vision is null ? null : new List<(string Url, string Where)>();
        var turns = ChatInput.Turns(messagesJson, images);
        var tools = ChatInput.Tools(f);
        var token = HttpJson.Token(context, stopping, out var linked);
        using var _ = linked;
        int[] prompt;
        List<Osprey.Images.ProcessedImage>? patches = null;
        if (images is { Count: > 0 })
        {
            // Images are read (and fetched, when allowed) here on the request's thread; the engine gets their patches.
            var vision = model.Vision!;
            if (images.Count > vision.Limits.MaxImages)
                throw ApiException.Bad($"The request has {images.Count} images; this server takes at most {vision.Limits.MaxImages} per request (--max_images_per_request).", images[vision.Limits.MaxImages].Where);
            patches = [];
            foreach (var (url, where) in images)
            {
                var at = where + ".image_url.url";
                try { patches.Add(vision.Prepare(await vision.ReadAsync(url, at, token).ConfigureAwait(false), at)); }
                catch (OspreyException e) when (e is not EngineException) { throw ApiException.Bad(e.Message, at); }
            }
            try
            {
                prompt = model.EncodeChat(turns, tools, patches);
            }
            catch (OspreyException e) when (e is not EngineException)
            {
                throw ApiException.Bad($"The messages could not be rendered with the chat template: {e.Message}", "messages");
            }
        }
        else
        {
            try
            {
                prompt = model.EncodeChat(turns, tools);
            }
            catch (OspreyException e) when (e is not EngineException)
            {
                throw ApiException.Bad($"The messages could not be rendered with the chat template: {e.Message}", "messages");
            }
        }
        p.CheckFits([prompt], model.Engine.MaxModelLen, "messages");
        var requests = p.EngineRequests([prompt]);
        if (patches is not null) requests = requests.Select(r => r with { Images = patches }).ToList();
        await using var group = RequestGroup.Submit(model.Engine, requests, token);
        var choices = requests.Select((r, i) => new ChoiceState(i, prompt.Length) { Tools = tools is null ? null : new ToolCallStream() }).ToArray();
        var id = RequestIds.New(context, "chatcmpl-");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (p.Stream)
        {
            await Stream(context, group, choices, p, id, created, token).ConfigureAwait(false);
            return;
        }
        await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false)) choices[i].Add(u);
        await HttpJson.WriteJson(context, new Completion(id, "chat.completion", created, p.ModelName, choices.Select(c => Choice(c, p)).ToList(), UsageJson.Of(choices))).ConfigureAwait(false);
    }

    /// <summary>A finished choice; with tools, its tool-call blocks become tool_calls (and the finish "tool_calls").</summary>
    Choice Choice(ChoiceState c, GenerationRequest p)
    {
        var text = c.Text.ToString();
        string? content = text;
        IReadOnlyList<ToolCall> calls = [];
        if (c.Tools is not null) (content, calls) = ToolCallReply.Parse(text);
        return new Choice(c.Index, new Message("assistant", content, null, ToolCalls(calls, withIndex: false)),
            p.Logprobs ? LogprobsJson.ForChat(c.Tokens, p.TopLogprobs, model.Tokenizer) : null,
            calls.Count > 0 ? "tool_calls" : c.Finish ?? "length");
    }

    /// <summary>
    /// Server-sent events: a role chunk per choice, then text as it comes (with tools, text that may open a call is
    /// held back), a finishing chunk per choice, the usage chunk when asked for, and [DONE].
    /// </summary>
    async Task Stream(HttpContext context, RequestGroup group, ChoiceState[] choices, GenerationRequest p, string id, long created, CancellationToken token)
    {
        HttpJson.StartSse(context);
        var usage = p.IncludeUsage ? (object)HttpJson.Null : null;
        Chunk One(int index, Delta delta, IReadOnlyList<GeneratedToken>? tokens, string? finish) => new(id, "chat.completion.chunk", created, p.ModelName,
            [new ChunkChoice(index, delta, tokens is null ? null : LogprobsJson.ForChat(tokens, p.TopLogprobs, model.Tokenizer), finish)], usage);

        foreach (var c in choices)
            await HttpJson.WriteChunk(context, One(c.Index, new Delta("assistant", ""), null, null), token).ConfigureAwait(false);
        try
        {
            await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false))
            {
                var c = choices[i];
                c.Add(u);
                var delta = c.Tools is null ? u.TextDelta : c.Tools.Add(u.TextDelta);
                var tokens = p.Logprobs && u.Token is not null ? new[] { u.Token } : null;
                if (delta.Length > 0 || tokens is not null)
                    await HttpJson.WriteChunk(context, One(i, new Delta(Content: delta.Length > 0 ? delta : null), tokens, null), token).ConfigureAwait(false);
                if (u.Finish is null) continue;
                string? rest = null;
                IReadOnlyList<ToolCall> calls = [];
                if (c.Tools is not null) (rest, calls) = ToolCallReply.Finish(c.Tools);
                var finish = calls.Count > 0 ? "tool_calls" : u.Finish;
                await HttpJson.WriteChunk(context, One(i, new Delta(Content: rest, ToolCalls: ToolCalls(calls, withIndex: true)), null, finish), token).ConfigureAwait(false);
            }
        }
        catch (EngineException e)
        {
            await HttpJson.WriteSseError(context, EngineErrors.ToApi(e), context.RequestAborted).ConfigureAwait(false);
            return;
        }
        if (p.IncludeUsage)
            await HttpJson.WriteChunk(context, new Chunk(id, "chat.completion.chunk", created, p.ModelName, [], UsageJson.Of(choices)), token).ConfigureAwait(false);
        await HttpJson.WriteDone(context, token).ConfigureAwait(false);
    }
}
