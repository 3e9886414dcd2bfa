namespace Osprey.Models.Llava;

/// <summary>
/// Checkpoint names of a LLaVA loaded as a <see cref="CausalLM"/>, whose language model sits where every text model's
/// does ("model.", "lm_head.") beside "vision_tower.vision_model.", "multi_modal_projector." and "image_newline". Reads
/// transformers 5's in-memory layout ("model.language_model.", "model.vision_tower.", ...), what transformers 5.17 saves
/// ("language_model.model.", "language_model.lm_head.", "vision_tower.embeddings.") and the hub checkpoints'
/// ("vision_tower.vision_model."). Saving writes each tensor back under the name it was read from.
/// </summary>
internal static class LlavaNames
{
    /// <summary>The model's name for checkpoint tensor <paramref name="name"/>; null for a tensor LLaVA never uses.</summary>
    public static string? ToModel(string name)
    {
        name = Normalize(name);
        // SigLIP's pooling head and older CLIP checkpoints' position_ids buffer are not on LLaVA's path.
        if (name.StartsWith("vision_tower.vision_model.head.", StringComparison.Ordinal) || name == "vision_tower.vision_model.embeddings.position_ids")
            return null;
        return name;
    }

    /// <summary>
    /// The module path, in the model's names, of a checkpoint weight that LLaVA never runs but transformers' model holds as
    /// a linear layer: SigLIP's pooling head (<c>head.attention.out_proj</c>, <c>head.mlp.fc1</c>, <c>head.mlp.fc2</c>, the
    /// head's 2-D <c>.weight</c>s). PEFT's short target names reach those layers too, so an adapter's target_modules must
    /// name the adapted layers exactly. Null for every other tensor.
    /// </summary>
    public static string? UnusedLinear(string name, IReadOnlyList<long> shape)
    {
        name = Normalize(name);
        return shape.Count == 2 && name.StartsWith("vision_tower.vision_model.head.", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal)
            ? name[..^".weight".Length] : null;
    }

    /// <summary>A checkpoint name in the model's layout (whether or not the model uses the tensor).</summary>
    static string Normalize(string name)
    {
        string[][] prefixes =
        [
            ["model.language_model.", "model."],
            ["language_model.model.", "model."],
            ["language_model.lm_head.", "lm_head."],
            ["model.vision_tower.", "vision_tower."],
            ["model.multi_modal_projector.", "multi_modal_projector."],
        ];
        foreach (var p in prefixes)
            if (name.StartsWith(p[0], StringComparison.Ordinal)) { name = p[1] + name[p[0].Length..]; break; }
        if (name == "model.image_newline") name = "image_newline";
        if (name.StartsWith("vision_tower.", StringComparison.Ordinal) && !name.StartsWith("vision_tower.vision_model.", StringComparison.Ordinal))
            name = "vision_tower.vision_model." + name["vision_tower.".Length..];
        return name;
    }

    /// <summary>The name transformers 5.17 saves a model tensor under (for one the source checkpoint did not hold).</summary>
    public static string ToCheckpoint(string name) =>
        name.StartsWith("model.", StringComparison.Ordinal) ? "language_model." + name
        : name.StartsWith("lm_head.", StringComparison.Ordinal) ? "language_model." + name
        : name.StartsWith("vision_tower.vision_model.", StringComparison.Ordinal) ? "vision_tower." + name["vision_tower.vision_model.".Length..]
        : name;
}
