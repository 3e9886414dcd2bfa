namespace Osprey.Training;

/// <summary>When a run writes checkpoints (<c>--save_strategy</c>).</summary>
public enum SaveStrategy
{
    /// <summary>Every <c>--save_steps</c> steps and at the end.</summary>
    Steps,

    /// <summary>Never (benchmarks).</summary>
    No,
}
