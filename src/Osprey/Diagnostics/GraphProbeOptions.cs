using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Diagnostics;

/// <summary>What <c>osprey graph-probe</c> checks and times (<see cref="GraphProbe"/>).</summary>
public sealed record GraphProbeOptions
{
    /// <summary>The model whose decode step is captured, and its device.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>Batch sizes to probe.</summary>
    [Option("batch_size", "Batch sizes.", Placeholder = "N...", Converter = typeof(PositiveIntegersConverter))]
    public IReadOnlyList<int> BatchSizes { get; init; } = [1];

    /// <summary>Prompt tokens per row.</summary>
    [Option("prompt_length", "Prompt tokens per row.")]
    public int PromptLength { get; init; } = 128;

    /// <summary>Tokens generated per row.</summary>
    [Option("max_new_tokens", "Tokens generated per row.")]
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>Only the toy op-chain check.</summary>
    [Option("skip_model", "Only the toy check.")]
    public bool SkipModel { get; init; }

    /// <summary>A JSON-lines file that gets one result line per batch size.</summary>
    [Option("result_path", "Append one JSON line per batch size.", Placeholder = "FILE")]
    public string? ResultPath { get; init; }
}
