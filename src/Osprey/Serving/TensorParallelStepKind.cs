namespace Osprey.Serving;

/// <summary>What a <see cref="TensorParallelStep"/> asks the workers to do.</summary>
internal enum TensorParallelStepKind : byte
{
    /// <summary>Allocate a new engine's KV cache.</summary>
    NewCache = 1,
    /// <summary>Free the cache: the engine is gone.</summary>
    EndEngine,
    /// <summary>One decode step of the running rows.</summary>
    Decode,
    /// <summary>Batched prefill of whole prompts.</summary>
    Prefill,
    /// <summary>One chunk of a long prompt in the staging row.</summary>
    Chunk,
    /// <summary>A cache row copy (row compaction, a staged prompt joining the running rows).</summary>
    CopyRow,
    /// <summary>Hidden states for an embedding request.</summary>
    Hidden,
}
