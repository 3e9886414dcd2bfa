namespace Osprey.Options;

/// <summary>
/// Declares a property of an options record as a flag: its name on the command line, in <c>--config</c> files, in
/// args.json and in the web UI's forms, with one line of help. The property's initializer is the default, so a default
/// lives in exactly one place; a nullable property whose default is decided from other options says so in
/// <see cref="DefaultText"/> and resolves it in one method of the record.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class OptionAttribute(string name, string help) : Attribute
{
    /// <summary>The flag as typed, snake_case (<c>lora_rank</c>).</summary>
    public string Name { get; } = name;

    /// <summary>One sentence for <c>--help</c> and the form's tooltip.</summary>
    public string Help { get; } = help;

    /// <summary>Other names of the same flag (ms-swift's <c>tuner_type</c> for <c>train_type</c>).</summary>
    public string[] Aliases { get; init; } = [];

    /// <summary>The value placeholder in help (<c>N</c>, <c>X</c>, <c>DIR</c>); derived from the type when null.</summary>
    public string? Placeholder { get; init; }

    /// <summary>How help shows a default that the initializer cannot express (<c>1e-4 for LoRA, 1e-5 for full</c>).</summary>
    public string? DefaultText { get; init; }

    /// <summary>A <see cref="IOptionConverter"/> type for properties that are not a string, number, bool, enum or list.</summary>
    public Type? Converter { get; init; }

    /// <summary>Shown among the first fields of a form; the rest are folded.</summary>
    public bool Common { get; init; }

    /// <summary>A credential (<c>--hub_token</c>): never written out by <see cref="OptionSet.ToJson"/> (args.json travels with checkpoints).</summary>
    public bool Secret { get; init; }
}
