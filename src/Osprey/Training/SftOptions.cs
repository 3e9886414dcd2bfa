using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// A fine-tuning run's settings, named and defaulted as ms-swift's flags (<c>--num_train_epochs 3</c>,
/// <c>--learning_rate</c> 1e-4 for LoRA and 1e-5 for full, <c>--weight_decay 0.1</c>, <c>--adam_beta2 0.95</c>,
/// <c>--gradient_checkpointing true</c>, ...). Validated once by <see cref="Validate"/>.
/// </summary>
public sealed record SftOptions
{
    /// <summary>lora or full (<c>--train_type</c> / <c>--tuner_type</c>).</summary>
    public string TrainType { get; init; } = "lora";

    /// <summary>The adapter to train when <see cref="TrainType"/> is lora.</summary>
    public LoraOptions Lora { get; init; } = new();

    /// <summary>Full training: parameter-name prefixes kept frozen (<c>--freeze_parameters</c>).</summary>
    public IReadOnlyList<string> FreezeParameters { get; init; } = [];

    /// <summary>Full training: prefixes trained even if frozen above (<c>--trainable_parameters</c>).</summary>
    public IReadOnlyList<string> TrainableParameters { get; init; } = [];

    /// <summary>Passes over the training set (<c>--num_train_epochs</c>); fractional values stop part-way.</summary>
    public double NumTrainEpochs { get; init; } = 3;

    /// <summary>Total optimizer steps; overrides epochs when positive (<c>--max_steps</c>).</summary>
    public long MaxSteps { get; init; } = -1;

    /// <summary>Samples per micro-batch (<c>--per_device_train_batch_size</c>).</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Samples per evaluation batch (<c>--per_device_eval_batch_size</c>).</summary>
    public int EvalBatchSize { get; init; } = 1;

    /// <summary>Micro-batches per optimizer step (<c>--gradient_accumulation_steps</c>; ms-swift's default makes the total batch ≥ 16).</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Peak learning rate (<c>--learning_rate</c>).</summary>
    public double LearningRate { get; init; } = 1e-4;

    /// <summary>cosine, linear, constant or constant_with_warmup (<c>--lr_scheduler_type</c>).</summary>
    public string LrSchedulerType { get; init; } = "cosine";

    /// <summary>Warm-up as a fraction of all steps (<c>--warmup_ratio</c>).</summary>
    public double WarmupRatio { get; init; }

    /// <summary>Warm-up steps; wins over the ratio when positive (<c>--warmup_steps</c>).</summary>
    public long WarmupSteps { get; init; }

    /// <summary>Decoupled weight decay (not applied to biases and norm weights) (<c>--weight_decay</c>).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>AdamW β1 (<c>--adam_beta1</c>).</summary>
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary>AdamW β2 (<c>--adam_beta2</c>).</summary>
    public double AdamBeta2 { get; init; } = 0.95;

    /// <summary>AdamW ε (<c>--adam_epsilon</c>).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Gradient clipping norm; 0 turns clipping off (<c>--max_grad_norm</c>).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>LoRA+: lora_B learns this many times faster than lora_A (<c>--lorap_lr_ratio</c>).</summary>
    public double? LoraPlusLrRatio { get; init; }

    /// <summary>Recompute layer activations in the backward pass (<c>--gradient_checkpointing</c>).</summary>
    public bool GradientCheckpointing { get; init; } = true;

    /// <summary>Seed for initialisation, data order and dropout (<c>--seed</c>).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Log every this many steps (<c>--logging_steps</c>).</summary>
    public int LoggingSteps { get; init; } = 5;

    /// <summary>steps (every <see cref="SaveSteps"/> and at the end) or no (never; for benchmarks) (<c>--save_strategy</c>).</summary>
    public string SaveStrategy { get; init; } = "steps";

    /// <summary>Save a checkpoint every this many steps (<c>--save_steps</c>).</summary>
    public int SaveSteps { get; init; } = 500;

    /// <summary>Evaluate every this many steps (<c>--eval_steps</c>; defaults to save_steps).</summary>
    public int? EvalSteps { get; init; }

    /// <summary>Keep at most this many checkpoints, plus the best (<c>--save_total_limit</c>).</summary>
    public int? SaveTotalLimit { get; init; }

    /// <summary>Save only weights, not optimizer state (such checkpoints resume with <see cref="ResumeOnlyModel"/> only) (<c>--save_only_model</c>).</summary>
    public bool SaveOnlyModel { get; init; }

    /// <summary>Checkpoint folder to resume from (<c>--resume_from_checkpoint</c>).</summary>
    public string? ResumeFromCheckpoint { get; init; }

    /// <summary>Resume weights only: optimizer, schedule and data position start fresh (<c>--resume_only_model</c>).</summary>
    public bool ResumeOnlyModel { get; init; }

    /// <summary>Checks every value; the message names the flag and the fix.</summary>
    public void Validate()
    {
        if (TrainType is not ("lora" or "full")) throw new OspreyException($"--train_type '{TrainType}' is not supported; use lora or full.");
        if (TrainType == "lora") Lora.Validate();
        if (BatchSize < 1) throw new OspreyException($"--per_device_train_batch_size must be at least 1 (got {BatchSize}).");
        if (EvalBatchSize < 1) throw new OspreyException($"--per_device_eval_batch_size must be at least 1 (got {EvalBatchSize}).");
        if (GradientAccumulationSteps < 1) throw new OspreyException($"--gradient_accumulation_steps must be at least 1 (got {GradientAccumulationSteps}).");
        if (!(LearningRate > 0)) throw new OspreyException($"--learning_rate must be positive (got {LearningRate}).");
        if (!LearningRateSchedule.Types.Contains(LrSchedulerType)) throw new OspreyException($"--lr_scheduler_type '{LrSchedulerType}' is not supported; use {string.Join(", ", LearningRateSchedule.Types)}.");
        if (WarmupRatio is < 0 or > 1) throw new OspreyException($"--warmup_ratio must be in [0, 1] (got {WarmupRatio}).");
        if (MaxSteps <= 0 && !(NumTrainEpochs > 0)) throw new OspreyException("--num_train_epochs must be positive, or give --max_steps.");
        if (LoggingSteps < 1) throw new OspreyException($"--logging_steps must be at least 1 (got {LoggingSteps}).");
        if (SaveStrategy is not ("steps" or "no")) throw new OspreyException($"--save_strategy '{SaveStrategy}' is not supported; use steps or no.");
        if (SaveSteps < 1) throw new OspreyException($"--save_steps must be at least 1 (got {SaveSteps}).");
        if (EvalSteps is < 1) throw new OspreyException($"--eval_steps must be at least 1 (got {EvalSteps}).");
        if (SaveTotalLimit is < 1) throw new OspreyException($"--save_total_limit must be at least 1 (got {SaveTotalLimit}).");
        if (AdamBeta1 is < 0 or >= 1 || AdamBeta2 is < 0 or >= 1) throw new OspreyException("--adam_beta1 and --adam_beta2 must be in [0, 1).");
        if (LoraPlusLrRatio is <= 0) throw new OspreyException($"--lorap_lr_ratio must be positive (got {LoraPlusLrRatio}).");
    }
}
