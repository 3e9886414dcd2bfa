using System.Text.Json;
using System.Text.Json.Serialization;
using Osprey.Models;

namespace Osprey.Inference;

/// <summary>A model folder's generation_config.json (the fields generation uses).</summary>
public sealed record GenerationConfigFile
{
    /// <summary>do_sample.</summary>
    [JsonPropertyName("do_sample")] public bool? DoSample { get; init; }
    /// <summary>temperature.</summary>
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    /// <summary>top_k.</summary>
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    /// <summary>top_p.</summary>
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    /// <summary>repetition_penalty.</summary>
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }
    /// <summary>max_new_tokens.</summary>
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }
    /// <summary>eos_token_id: a number or a list.</summary>
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenId { get; init; }
    /// <summary>pad_token_id.</summary>
    [JsonPropertyName("pad_token_id")] public JsonElement? PadToken { get; init; }

    /// <summary>End-of-sequence ids.</summary>
    [JsonIgnore] public IReadOnlyList<int> EosTokenIds => TransformerConfig.Ids(EosTokenId, "eos_token_id");

    /// <summary>Padding id, if set.</summary>
    [JsonIgnore] public int? PadTokenId => TransformerConfig.Ids(PadToken, "pad_token_id") is [var p, ..] ? p : null;

    /// <summary>Reads generation_config.json from a model folder; null when the folder has none.</summary>
    public static GenerationConfigFile? Read(string modelDirectory)
    {
        var path = Path.Combine(modelDirectory, "generation_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<GenerationConfigFile>(File.ReadAllBytes(path),
                new JsonSerializerOptions { AllowTrailingCommas = true, ReadCommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{path} is not valid ({e.Message.TrimEnd('.')}); fix or delete it.", e);
        }
    }
}
