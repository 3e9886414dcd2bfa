using System.Text.Json;

namespace Osprey.Models;

/// <summary>One supported model family: turns its config.json into a <see cref="DecoderSpec"/>.</summary>
internal interface IModelFamily
{
    /// <summary>config.json model_type values this family reads.</summary>
    IReadOnlyList<string> ModelTypes { get; }

    /// <summary>config.json architectures values this family reads.</summary>
    IReadOnlyList<string> Architectures { get; }

    /// <summary>Reads config.json (already parsed) into a spec; <paramref name="file"/> names it in errors.</summary>
    DecoderSpec ReadSpec(JsonDocument config, string file);
}
