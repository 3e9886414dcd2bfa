using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>How <see cref="DatasetEncoder"/> encodes rows: ms-swift's template and length flags.</summary>
public sealed class EncodingOptions
{
    /// <summary><c>--template</c>: null/"auto" for the tokenizer's own chat template, a named template, or Jinja source.</summary>
    public string? Template { get; init; }

    /// <summary><c>--system</c>.</summary>
    public string? System { get; init; }

    /// <summary><c>--loss_scale</c> for chat rows (text rows always train on every token, as ms-swift's <c>pt</c>).</summary>
    public LossScale LossScale { get; init; } = LossScale.Default;

    /// <summary><c>--max_length</c>; null for no limit.</summary>
    public int? MaxLength { get; init; }

    /// <summary><c>--truncation_strategy</c> (default delete, as ms-swift).</summary>
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.Delete;

    /// <summary><c>--packing</c>: pack samples into rows of <see cref="MaxLength"/> tokens (requires MaxLength).</summary>
    public bool Packing { get; init; }

    /// <summary><c>--strict</c> (default true): a row the template cannot encode is an error; false skips and counts it.</summary>
    public bool Strict { get; init; } = true;

    /// <summary>Threads for encoding (<c>--dataset_num_proc</c>); 0 or less means all cores.</summary>
    public int Threads { get; init; }

    /// <summary>Extra Jinja template variables (e.g. enable_thinking).</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    /// <summary>The effective number of threads.</summary>
    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    /// <summary>A canonical description of every option that changes the encoded output (for cache keys).</summary>
    public string Fingerprint(string templateSource) =>
        $"template={Template ?? "auto"}\ntemplate_source={templateSource}\nsystem={(System is null ? "<null>" : "=" + System)}\n" +
        $"loss_scale={LossScale.Name()}\nmax_length={MaxLength?.ToString(global::System.Globalization.CultureInfo.InvariantCulture) ?? "none"}\n" +
        $"truncation={Truncation}\npacking={Packing}\nstrict={Strict}\nextra={string.Join(",", (Extra ?? new Dictionary<string, object?>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value))}";
}
