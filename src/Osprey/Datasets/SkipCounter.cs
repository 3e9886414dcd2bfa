namespace Osprey.Datasets;

/// <summary>How many bad rows were skipped (under --strict false); readers increment <see cref="Value"/>.</summary>
public sealed class SkipCounter
{
    /// <summary>The count.</summary>
    public int Value;
}
