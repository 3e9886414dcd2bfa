namespace Osprey.Options;

/// <summary>
/// The spelling of an enum member on the command line when it is not the member's snake_case name
/// (<c>rm</c> for <c>RewardModel</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = false)]
public sealed class OptionValueAttribute(string text) : Attribute
{
    /// <summary>The value as typed.</summary>
    public string Text { get; } = text;
}
