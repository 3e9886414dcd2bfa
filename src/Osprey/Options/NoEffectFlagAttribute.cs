namespace Osprey.Options;

/// <summary>
/// Declares a flag that an options record accepts but that changes nothing in Osprey: an ms-swift flag that only tunes
/// a Python detail (worker processes, DeepSpeed, fused kernels) or a feature Osprey does not have. Scripts written for
/// ms-swift then run unchanged; the command line reader prints <see cref="Reason"/> as a one-line notice when the flag
/// is given, and <c>--help</c> lists it under its own heading. One attribute per flag, on the record whose verbs take it
/// (groups pass theirs on, as they do their <see cref="OptionAttribute"/> flags).
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class NoEffectFlagAttribute(string name, string reason) : Attribute
{
    /// <summary>The flag as ms-swift spells it, snake_case (<c>dataloader_num_workers</c>).</summary>
    public string Name { get; } = name;

    /// <summary>Why it has no effect here, one sentence without the final period (it ends the notice).</summary>
    public string Reason { get; } = reason;
}
