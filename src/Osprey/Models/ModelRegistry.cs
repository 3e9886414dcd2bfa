using System.Text.Json;
using Osprey.Models.Gemma2;
using Osprey.Models.Gemma3;
using Osprey.Models.Llama;
using Osprey.Models.Mistral;
using Osprey.Models.Phi3;
using Osprey.Models.Qwen2;
using Osprey.Models.Qwen2Vl;
using Osprey.Models.Qwen3;

namespace Osprey.Models;

/// <summary>The supported families, keyed by config.json model_type (or, failing that, architectures).</summary>
public static class ModelRegistry
{
    static readonly IModelFamily[] Families =
    [
        new LlamaFamily(), new Qwen2Family(), new Qwen3Family(), new MistralFamily(), new Phi3Family(),
        new Gemma2Family(), new Gemma3Family(), new Qwen2VlFamily(), new Llava.LlavaFamily(),
    ];

    /// <summary>Every supported model_type.</summary>
    public static IReadOnlyList<string> ModelTypes { get; } = Families.SelectMany(f => f.ModelTypes).ToArray();

    /// <summary>
    /// Finds the family for a parsed config.json by model_type (by architectures when model_type is absent);
    /// throws listing the supported ones.
    /// </summary>
    internal static IModelFamily Find(JsonDocument config, string file)
    {
        var root = config.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new OspreyException($"{file} holds a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object; fix or re-download it.");
        string? type = root.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type is not null)
            foreach (var f in Families)
                if (f.ModelTypes.Contains(type)) return f;
        // architectures decide only when model_type is absent: an unknown model_type may reuse a class name.
        if (type is null && root.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array)
            foreach (var arch in a.EnumerateArray())
                foreach (var f in Families)
                    if (arch.ValueKind == JsonValueKind.String && f.Architectures.Contains(arch.GetString()!)) return f;
        var what = type is null ? "no model_type" : $"model_type '{type}'";
        throw new OspreyException($"{file} has {what}, which Osprey does not support; supported model types: {string.Join(", ", ModelTypes)}.");
    }

    /// <summary>Reads a model folder's config.json into a spec.</summary>
    public static DecoderSpec ReadSpec(string modelDirectory)
    {
        var file = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(file))
            throw new OspreyException($"{modelDirectory} has no config.json; point --model at a Hugging Face model folder.");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{file} is not valid JSON (line {e.LineNumber + 1}): {e.Message}; fix or re-download it.", e);
        }
        using (doc)
            return Find(doc, file).ReadSpec(doc, file);
    }
}
