using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Serving;

/// <summary>What <c>osprey benchmark</c> times: static batches through <c>GenerationBenchmark</c>, or concurrent requests through the serving engine (<see cref="EngineBenchmark"/>).</summary>
public sealed record BenchmarkOptions
{
    /// <summary>The model (the demo model when none is given) and its device.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>Static batch sizes to run.</summary>
    [Option("batch_size", "Batch sizes to run.", Placeholder = "N...", Converter = typeof(PositiveIntegersConverter))]
    public IReadOnlyList<int> BatchSizes { get; init; } = [1];

    /// <summary>Random prompt tokens per row.</summary>
    [Option("prompt_length", "Prompt tokens per row.")]
    public int PromptLength { get; init; } = 128;

    /// <summary>Tokens generated per row (eos ignored).</summary>
    [Option("max_new_tokens", "Tokens generated per row.")]
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>Untimed passes before the timed one.</summary>
    [Option("warmup", "Untimed passes first.")]
    public int Warmup { get; init; } = 1;

    /// <summary>A JSON-lines file that gets one result line per run.</summary>
    [Option("result_path", "Also append one JSON line per batch size to FILE.", Placeholder = "FILE")]
    public string? ResultPath { get; init; }

    /// <summary>Concurrent requests through the serving engine instead of static batches (empty: static batches).</summary>
    [Option("concurrency", "Instead of one static batch: N requests at once through the serving engine (continuous batching, as osprey deploy runs them); reports time to first token, per-request decode speed and throughput. Needs the model's tokenizer.", Placeholder = "N...", Converter = typeof(PositiveIntegersConverter))]
    public IReadOnlyList<int> Concurrency { get; init; } = [];

    /// <summary>With concurrency: --tensor_parallel_size, the engine split over N GPUs.</summary>
    [OptionGroup]
    public TensorParallelOptions TensorParallel { get; init; } = new();

    /// <summary>With concurrency: launch every kernel instead of replaying CUDA graphs.</summary>
    [Option("enforce_eager", "With --concurrency: no CUDA graphs.")]
    public bool EnforceEager { get; init; }

    /// <summary>With --concurrency: sampling temperature (0: greedy).</summary>
    [Option("temperature", "With --concurrency: sample each request at this temperature (seeded per request) instead of greedy decoding (0), e.g. to time the engine with GRPO's rollout settings.")]
    public double Temperature { get; init; }

    /// <summary>With --concurrency and a temperature: nucleus threshold.</summary>
    [Option("top_p", "With --concurrency and --temperature: nucleus sampling threshold in (0, 1].")]
    public double TopP { get; init; } = 1.0;

    /// <summary>With --concurrency and a temperature: top-k (0: all tokens).</summary>
    [Option("top_k", "With --concurrency and --temperature: keep the N most likely tokens (0: all).")]
    public int TopK { get; init; }

    /// <summary>With --concurrency: a grammar for every request.</summary>
    [Option("response_format", "With --concurrency: also run every request under a grammar (json_object, or FILE holding a JSON schema) and compare with the same requests unconstrained, each row held to the length its constrained run produced; prints both throughputs and their ratio.", Placeholder = "json_object|FILE")]
    public string? ResponseFormat { get; init; }

    /// <summary>With a response format: timed structured/free-text pairs per concurrency.</summary>
    [Option("pairs", "With --response_format: timed pairs (structured round, then the same rows as free text) per concurrency, one after another in this process; with more than one, also prints the median ratio and its range.", Placeholder = "N")]
    public int Pairs { get; init; } = 1;
}
