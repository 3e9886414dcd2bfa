namespace Osprey.Distributed;

/// <summary>A collective started by <see cref="ICollectives.AllReduceSumAsync"/> or <see cref="ICollectives.AllGatherAsync"/>.</summary>
public interface ICollectiveWork
{
    /// <summary>
    /// Orders what comes next after the collective: on a GPU libtorch's current stream waits for it (no host wait), on
    /// the CPU the call blocks until it is done. Rethrows its failure. Calling it again does nothing.
    /// </summary>
    void Wait();
}
