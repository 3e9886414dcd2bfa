using System.Text.Json;

namespace Osprey.Datasets;

/// <summary>
/// The context length a model was built for, the default --max_length of every verb that encodes datasets (sft, pt,
/// rlhf, encode), as ms-swift does: no sample runs past the positions the model has, and no row is tokenized without
/// a bound.
/// </summary>
internal static class ModelContext
{
    /// <summary>max_position_embeddings in the folder's config.json (or under text_config); null when it does not say.</summary>
    public static int? Read(string folder)
    {
        var config = Path.Combine(folder, "config.json");
        if (!File.Exists(config)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(config));
            var root = doc.RootElement;
            // Multimodal configs keep the language model's context under text_config.
            foreach (var node in new[] { root, root.TryGetProperty("text_config", out var text) ? text : default })
                if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty("max_position_embeddings", out var m) && m.TryGetInt32(out var n) && n > 0)
                    return n;
        }
        catch (JsonException)
        {
            // A config.json that is not JSON fails with its own message when the model loads.
        }
        return null;
    }
}
