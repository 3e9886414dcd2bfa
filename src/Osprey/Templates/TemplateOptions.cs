namespace Osprey.Templates;

/// <summary>Options shared by training encoding and inference prompt rendering.</summary>
public sealed class TemplateOptions
{
    /// <summary>
    /// <c>--system</c>: the system prompt for conversations that have none, replacing the template's default system
    /// (ms-swift's priority: the sample's own system message, then <c>--system</c>, then the template's default).
    /// An empty string means no system prompt at all.
    /// </summary>
    public string? System { get; init; }

    /// <summary><c>--loss_scale</c>.</summary>
    public LossScale LossScale { get; init; } = LossScale.Default;

    /// <summary>Extra variables for Jinja chat templates, e.g. <c>enable_thinking</c>.</summary>
    public IReadOnlyDictionary<string, object?>? Extra { get; init; }

    internal static readonly TemplateOptions Defaults = new();
}
