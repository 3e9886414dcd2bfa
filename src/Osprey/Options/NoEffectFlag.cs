namespace Osprey.Options;

/// <summary>A flag accepted for ms-swift compatibility that has no effect in Osprey (see <see cref="NoEffectFlagAttribute"/>).</summary>
/// <param name="Name">The flag, snake_case.</param>
/// <param name="Reason">Why it has no effect here, without a final period.</param>
public sealed record NoEffectFlag(string Name, string Reason)
{
    /// <summary>The notice printed when the flag is given, as <c>--name</c> was written by the user.</summary>
    public string Notice(string written) => $"osprey: --{written} has no effect here: {Reason}.";
}
