namespace Osprey.Evaluation;

/// <summary>Generation settings of an evaluation (<c>--eval_generation_config</c>); greedy by default.</summary>
public sealed record EvalGeneration
{
    /// <summary>New tokens at most.</summary>
    public int MaxTokens { get; init; } = 256;
    /// <summary>Sampling temperature (0: greedy).</summary>
    public double Temperature { get; init; }
    /// <summary>Nucleus threshold.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Top-k (0: all).</summary>
    public int TopK { get; init; }
    /// <summary>Sample instead of greedy decoding (null: when the temperature is positive).</summary>
    public bool? DoSample { get; init; }
    /// <summary>Sampling seed.</summary>
    public long Seed { get; init; } = 42;

    /// <summary>True when decoding is greedy.</summary>
    public bool IsGreedy => !(DoSample ?? Temperature > 0) || Temperature <= 0;
}
