namespace Osprey.Training.MemoryFit;

/// <summary>
/// The training choices that decide peak GPU memory (docs/memory.md): what is trained, how the base is stored, the
/// adapter, the batch shape and whether layers are recomputed. Built from the same flags sft binds
/// (<see cref="From"/>), or by hand for a what-if.
/// </summary>
public sealed record MemoryPlan
{
    /// <summary>LoRA adapters or full training.</summary>
    public TrainType TrainType { get; init; } = TrainType.Lora;

    /// <summary>4 or 8 for a bitsandbytes base, 0 for none.</summary>
    public int QuantBits { get; init; }

    /// <summary>4-bit only: absmax coded in 8 bits (double quantization).</summary>
    public bool DoubleQuant { get; init; } = true;

    /// <summary>LoRA rank r.</summary>
    public int LoraRank { get; init; } = 8;

    /// <summary>Adapted module names (q_proj … down_proj) or all-linear.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = ["all-linear"];

    /// <summary>LoRA dropout probability (a dropout keeps a mask and the dropped input per adapted layer).</summary>
    public double LoraDropout { get; init; } = 0.05;

    /// <summary>Samples per micro-batch.</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Tokens per sample (the longest a batch can be).</summary>
    public int MaxLength { get; init; } = 2048;

    /// <summary>Recompute layer activations in backward.</summary>
    public bool GradientCheckpointing { get; init; } = true;

    /// <summary>Bytes per element of the model's dtype (2 for bfloat16/float16, 4 for float32).</summary>
    public int DTypeBytes { get; init; } = 2;

    /// <summary>Ranks training together (NPROC_PER_NODE × NNODES, or WORLD_SIZE in a worker).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>--deepspeed/--fsdp's sharding of the optimizer state.</summary>
    public ZeroStage ZeroStage { get; init; }

    /// <summary>The optimizer state lives in CPU memory (zero2_offload).</summary>
    public bool OffloadOptimizer { get; init; }

    /// <summary>The plan of an sft/pt/rlhf run with these flags; <paramref name="configDtype"/> is config.json's dtype (for --torch_dtype auto).</summary>
    /// <exception cref="OspreyException">--torch_dtype names no dtype.</exception>
    public static MemoryPlan From(SftOptions o, string? configDtype, int maxPositionEmbeddings)
    {
        ArgumentNullException.ThrowIfNull(o);
        var q = o.Model.Quantization;
        return new MemoryPlan
        {
            TrainType = o.Trainer.TrainType,
            QuantBits = q.QuantMethod is not null || q.QuantBits is not null ? q.QuantBits ?? 0 : 0,
            DoubleQuant = q.Bnb4BitUseDoubleQuant,
            LoraRank = o.Trainer.Lora.Rank,
            TargetModules = o.Trainer.Lora.TargetModules,
            LoraDropout = o.Trainer.Lora.Dropout,
            BatchSize = o.Trainer.BatchSize,
            MaxLength = o.Encoding.MaxLength ?? maxPositionEmbeddings,
            GradientCheckpointing = o.Trainer.GradientCheckpointing,
            DTypeBytes = DTypeBytesOf(o.Model.ResolvedDtype(), configDtype),
            WorldSize = JobWorldSize(),
            ZeroStage = o.Trainer.Sharding.Stage,
            OffloadOptimizer = o.Trainer.Sharding.Offload,
        };
    }

    /// <summary>The world size of this process's job: WORLD_SIZE in a worker, NPROC_PER_NODE × NNODES in a launcher, else 1.</summary>
    static int JobWorldSize()
    {
        var env = Distributed.DistributedEnvironment.Current;
        return env.IsWorker ? env.WorldSize : (env.ProcessesPerNode ?? 1) * env.Nodes;
    }

    /// <summary>Bytes per element of <paramref name="requested"/>, or on a GPU with auto, of the config's dtype (bfloat16 when it names none).</summary>
    static int DTypeBytesOf(string requested, string? configDtype)
    {
        var name = (requested == "auto" ? configDtype ?? "bfloat16" : requested).Replace("torch.", "", StringComparison.Ordinal).ToLowerInvariant();
        return name switch
        {
            "bfloat16" or "bf16" or "float16" or "fp16" or "half" => 2,
            "float32" or "fp32" or "float" => 4,
            "float64" or "double" => 8,
            _ => throw new OspreyException($"--torch_dtype '{name}' is not a dtype Osprey trains in; use bfloat16, float16 or float32."),
        };
    }
}
