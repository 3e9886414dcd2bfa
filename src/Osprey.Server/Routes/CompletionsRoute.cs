using Osprey.Inference;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;
using static Osprey.Server.CompletionJson;

namespace Osprey.Server;

/// <summary>POST /v1/completions: raw prompts (text or token ids), n choices each, answered whole or streamed.</summary>
internal sealed class CompletionsRoute(ServedModel model, CancellationToken stopping)
{
    public async Task Handle(HttpContext context)
    {
        var f = new RequestFields(await HttpJson.ReadBody(context).ConfigureAwait(false));
        var prompts = PromptInputs.Read(f, "prompt", model);
        f.Unsupported("echo", v => v.ValueKind == JsonValueKind.False);
        f.Unsupported("suffix", v => v.ValueKind == JsonValueKind.String && v.GetString()!.Length == 0);
        f.Unsupported("best_of", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 1);
        var p = GenerationRequest.Read(f, model, chat: false);
        if (prompts.Count * p.N > GenerationRequest.MaxChoices)
            throw ApiException.Bad($"prompts times 'n' must be {GenerationRequest.MaxChoices} at most, got {prompts.Count * p.N}.", "n");
        p.CheckFits(prompts, model.Engine.MaxModelLen, "prompt");
        var requests = p.EngineRequests(prompts);
        var token = HttpJson.Token(context, stopping, out var linked);
        using var _ = linked;
        await using var group = RequestGroup.Submit(model.Engine, requests, token);
        var choices = requests.Select((r, i) => new ChoiceState(i, r.PromptIds.Count) { Group = i / p.N }).ToArray();
        var id = RequestIds.New(context, "cmpl-");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Completion Response(IReadOnlyList<Choice> items, object? usage) => new(id, "text_completion", created, p.ModelName, items, usage);
        if (p.Stream)
        {
            HttpJson.StartSse(context);
            try
            {
                await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false))
                {
                    var c = choices[i];
                    var offset = c.Text.Length;
                    c.Add(u);
                    if (u.TextDelta.Length == 0 && u.Finish is null && !(p.Logprobs && u.Token is not null)) continue;
                    var item = Choice(c, u.TextDelta, u.Token is null ? [] : [u.Token], offset, u.Finish, p);
                    await HttpJson.WriteChunk(context, Response([item], p.IncludeUsage ? HttpJson.Null : null), token).ConfigureAwait(false);
                }
            }
            catch (EngineException e)
            {
                await HttpJson.WriteSseError(context, EngineErrors.ToApi(e), context.RequestAborted).ConfigureAwait(false);
                return;
            }
            if (p.IncludeUsage) await HttpJson.WriteChunk(context, Response([], UsageJson.Of(choices)), token).ConfigureAwait(false);
            await HttpJson.WriteDone(context, token).ConfigureAwait(false);
            return;
        }
        await foreach (var (i, u) in group.ReadAll(token).ConfigureAwait(false)) choices[i].Add(u);
        var all = choices.Select(c => Choice(c, c.Text.ToString(), c.Tokens, 0, c.Finish ?? "length", p)).ToList();
        await HttpJson.WriteJson(context, Response(all, UsageJson.Of(choices))).ConfigureAwait(false);
    }

    /// <summary>A choice's text (or increment) with the logprobs of its tokens, whose text starts at <paramref name="offset"/>.</summary>
    Choice Choice(ChoiceState c, string text, IReadOnlyList<GeneratedToken> tokens, int offset, string? finish, GenerationRequest p) =>
        new(c.Index, text, p.Logprobs ? LogprobsJson.ForCompletion(tokens, p.TopLogprobs, offset, model.Tokenizer) : null, finish);
}
