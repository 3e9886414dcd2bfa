namespace Osprey.Options;

/// <summary>
/// Adds the <see cref="NoEffectFlagAttribute"/> flags declared on <see cref="Table"/> (a static class that only carries
/// them) to the record this marks: for a family of flags several unrelated records take, such as the vLLM engine's,
/// so that each flag is still declared once.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class NoEffectFlagsFromAttribute(Type table) : Attribute
{
    /// <summary>The class whose <see cref="NoEffectFlagAttribute"/>s are included.</summary>
    public Type Table { get; } = table;
}
