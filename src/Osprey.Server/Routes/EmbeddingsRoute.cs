using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>POST /v1/embeddings: the mean-pooled final hidden state of each input (base model only).</summary>
internal sealed class EmbeddingsRoute(ServedModel model, CancellationToken stopping)
{
    sealed record EmbeddingList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<Embedding> Data,
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("usage")] EmbeddingUsage Usage);

    /// <summary>One vector: a list of floats, or (encoding_format "base64") a string of their little-endian bytes.</summary>
    sealed record Embedding(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("index")] int Index,
        [property: JsonPropertyName("embedding")] object Vector);

    sealed record EmbeddingUsage(
        [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
        [property: JsonPropertyName("total_tokens")] int TotalTokens);

    public async Task Handle(HttpContext context)
    {
        var f = new RequestFields(await HttpJson.ReadBody(context).ConfigureAwait(false));
        var name = f.String("model");
        if (model.AdapterFor(name) is not null) throw ApiException.Bad($"'{name}' is a LoRA adapter; embeddings come from the base model '{model.Name}'.", "model");
        var format = f.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64")) throw ApiException.Bad($"'encoding_format' must be \"float\" or \"base64\", got \"{format}\".", "encoding_format");
        var hidden = model.Engine.Model.Spec.HiddenSize;
        if (f.Int("dimensions", 1) is { } dims && dims != hidden) throw ApiException.Bad($"'dimensions' must be this model's hidden size {hidden} (or left out), got {dims}.", "dimensions");
        if (f.Get("input") is null) throw ApiException.Bad("'input' is required.", "input");
        var inputs = PromptInputs.Read(f, "input", model);
        var token = HttpJson.Token(context, stopping, out var linked);
        using var _ = linked;
        var vectors = await Task.WhenAll(inputs.Select(ids => model.Engine.EmbedAsync(ids, token))).ConfigureAwait(false);
        var data = vectors.Select((v, i) => new Embedding("embedding", i,
            format == "base64" ? Convert.ToBase64String(MemoryMarshal.AsBytes(v.AsSpan())) : v)).ToList();
        var tokens = inputs.Sum(x => x.Length);
        await HttpJson.WriteJson(context, new EmbeddingList("list", data, name ?? model.Name, new EmbeddingUsage(tokens, tokens))).ConfigureAwait(false);
    }
}
