using System.Globalization;
using System.Text.Json;

namespace Osprey.Models;

/// <summary>
/// One rotary-embedding setting: the base, the rotated width and the frequency scaling. Reads both the
/// transformers 5 form (<c>rope_parameters</c>, flat or keyed by layer type) and the transformers 4 form
/// (<c>rope_theta</c> + <c>rope_scaling</c>).
/// </summary>
public sealed record RopeSettings
{
    /// <summary>RoPE base θ.</summary>
    public double Theta { get; init; } = 10000.0;
    /// <summary>default, linear or llama3.</summary>
    public string Type { get; init; } = "default";
    /// <summary>Scaling factor (linear, llama3).</summary>
    public double Factor { get; init; } = 1.0;
    /// <summary>llama3: low frequency factor.</summary>
    public double LowFreqFactor { get; init; } = 1.0;
    /// <summary>llama3: high frequency factor.</summary>
    public double HighFreqFactor { get; init; } = 4.0;
    /// <summary>llama3: the context length the model was pre-trained with.</summary>
    public double OriginalMaxPositionEmbeddings { get; init; } = 8192;
    /// <summary>Fraction of the head that is rotated.</summary>
    public double PartialRotaryFactor { get; init; } = 1.0;
    /// <summary>M-RoPE (Qwen2-VL): how many of the rotary frequencies follow the temporal, height and width position
    /// rows (mrope_section, summing to half the rotary width); null for one position row.</summary>
    public IReadOnlyList<int>? MropeSection { get; init; }

    static readonly string[] Supported = ["default", "linear", "llama3"];

    /// <summary>
    /// Reads the RoPE setting for one layer type ("full_attention", "sliding_attention") from a config.
    /// <paramref name="fallbackTheta"/> covers families whose base has its own field (Gemma 3's
    /// rope_local_base_freq).
    /// </summary>
    public static RopeSettings From(TransformerConfig c, string file, string layerType = "full_attention", double? fallbackTheta = null)
    {
        var s = new RopeSettings { Theta = c.RopeTheta ?? fallbackTheta ?? 10000.0, PartialRotaryFactor = c.PartialRotaryFactor ?? 1.0 };
        if (c.RopeParameters is JsonElement rp && rp.ValueKind == JsonValueKind.Object)
        {
            var node = rp;
            if (rp.TryGetProperty(layerType, out var perType) && perType.ValueKind == JsonValueKind.Object) node = perType;
            else if (rp.TryGetProperty("full_attention", out _) || rp.TryGetProperty("sliding_attention", out _))
                throw new OspreyException($"{file}: rope_parameters has no entry for '{layerType}'; add one or re-download the model.");
            return Apply(s, node, file);
        }
        if (c.RopeScaling is JsonElement rs && rs.ValueKind == JsonValueKind.Object)
            return Apply(s, rs, file);
        return s;
    }

    static RopeSettings Apply(RopeSettings s, JsonElement node, string file)
    {
        string type = s.Type;
        if (node.TryGetProperty("rope_type", out var t) && t.ValueKind == JsonValueKind.String) type = t.GetString()!;
        else if (node.TryGetProperty("type", out var t2) && t2.ValueKind == JsonValueKind.String) type = t2.GetString()!;
        // Qwen2-VL's hub configs say "mrope"; transformers 5 rewrites it to "default" and keeps mrope_section.
        if (type == "mrope") type = "default";
        if (!Supported.Contains(type))
            throw new OspreyException($"{file}: rope type '{type}' is not supported yet (supported: {string.Join(", ", Supported)}); use a model with one of those.");
        return s with
        {
            Type = type,
            Theta = Num(node, "rope_theta") ?? s.Theta,
            Factor = Num(node, "factor") ?? s.Factor,
            LowFreqFactor = Num(node, "low_freq_factor") ?? s.LowFreqFactor,
            HighFreqFactor = Num(node, "high_freq_factor") ?? s.HighFreqFactor,
            OriginalMaxPositionEmbeddings = Num(node, "original_max_position_embeddings") ?? s.OriginalMaxPositionEmbeddings,
            PartialRotaryFactor = Num(node, "partial_rotary_factor") ?? s.PartialRotaryFactor,
            MropeSection = node.TryGetProperty("mrope_section", out var ms) && ms.ValueKind == JsonValueKind.Array
                ? ms.EnumerateArray().Select(e => e.GetInt32()).ToArray()
                : s.MropeSection,
        };
    }

    static double? Num(JsonElement node, string name) =>
        node.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Type}(theta={Theta}, factor={Factor}, rotary={PartialRotaryFactor})");
}
