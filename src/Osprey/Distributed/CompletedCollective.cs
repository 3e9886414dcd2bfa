namespace Osprey.Distributed;

/// <summary>A collective that was already complete when it was started (a group of one, or a synchronous fallback).</summary>
public sealed class CompletedCollective : ICollectiveWork
{
    /// <summary>The one instance.</summary>
    public static readonly CompletedCollective Instance = new();

    CompletedCollective() { }

    /// <inheritdoc />
    public void Wait() { }
}
