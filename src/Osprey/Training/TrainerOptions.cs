using Osprey.Options;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// How a fine-tuning run trains, named and defaulted as ms-swift's flags (<c>--num_train_epochs 3</c>,
/// <c>--learning_rate</c> 1e-4 for LoRA and 1e-5 for full, <c>--weight_decay 0.1</c>, <c>--adam_beta2 0.95</c>,
/// <c>--gradient_checkpointing true</c>, ...). Shared by every recipe; validated once by <see cref="Validate"/>.
/// </summary>
[NoEffectFlagsFrom(typeof(Models.HubUploadFlags))]
// ms-swift's Seq2SeqTrainer and training arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlag("zero_hpz_partition_size", OneDevice)]
[NoEffectFlag("deepspeed_autotp_size", OneDevice)]
[NoEffectFlag("fsdp_config", OneDevice)]
[NoEffectFlag("ddp_find_unused_parameters", OneDevice)]
[NoEffectFlag("save_on_each_node", OneDevice)]
[NoEffectFlag("average_tokens_across_devices", OneDevice)]
[NoEffectFlag("sequence_parallel_size", OneDevice)]
[NoEffectFlag("dataloader_num_workers", Loader)]
[NoEffectFlag("dataloader_pin_memory", Loader)]
[NoEffectFlag("dataloader_persistent_workers", Loader)]
[NoEffectFlag("dataloader_prefetch_factor", Loader)]
[NoEffectFlag("dataloader_drop_last", Loader)]
[NoEffectFlag("use_liger_kernel", "Osprey's kernels are its own; Liger's Triton kernels are Python-only")]
[NoEffectFlag("gradient_checkpointing_kwargs", Python)]
[NoEffectFlag("label_names", Python)]
[NoEffectFlag("use_logits_to_keep", Python)]
[NoEffectFlag("vit_gradient_checkpointing", "the vision tower keeps its activations; --gradient_checkpointing covers the language model")]
[NoEffectFlag("lr_scheduler_kwargs", "Osprey's schedules take no extra arguments (cosine decays to 0)")]
[NoEffectFlag("full_determinism", "Osprey has no switch for deterministic kernels")]
[NoEffectFlag("report_to", Report)]
[NoEffectFlag("logging_dir", Report)]
[NoEffectFlag("swanlab_token", Report)]
[NoEffectFlag("swanlab_project", Report)]
[NoEffectFlag("swanlab_workspace", Report)]
[NoEffectFlag("swanlab_exp_name", Report)]
[NoEffectFlag("swanlab_lark_webhook_url", Report)]
[NoEffectFlag("swanlab_lark_secret", Report)]
[NoEffectFlag("swanlab_mode", Report)]
[NoEffectFlag("logging_first_step", "Osprey logs every --logging_steps steps")]
[NoEffectFlag("router_aux_loss_coef", "Osprey has no mixture-of-experts models")]
[NoEffectFlag("enable_dft_loss", NotYet)]
[NoEffectFlag("enable_channel_loss", NotYet)]
[NoEffectFlag("neftune_noise_alpha", NotYet)]
[NoEffectFlag("early_stop_interval", NotYet)]
[NoEffectFlag("create_checkpoint_symlink", NotYet)]
[NoEffectFlag("predict_with_generate", EvalLoss)]
[NoEffectFlag("metric", EvalLoss)]
[NoEffectFlag("acc_strategy", "Osprey logs token-level accuracy")]
[NoEffectFlag("max_new_tokens", NoGeneration)]
[NoEffectFlag("temperature", NoGeneration)]
[NoEffectFlag("eval_strategy", "evaluation runs every --eval_steps steps when there is validation data")]
[NoEffectFlag("evaluation_strategy", "evaluation runs every --eval_steps steps when there is validation data")]
[NoEffectFlag("max_epochs", "use --num_train_epochs or --max_steps")]
[NoEffectFlag("ignore_data_skip", "resuming continues the data where the checkpoint stopped")]
[NoEffectFlag("train_dataloader_shuffle", "--dataset_shuffle decides the order of training rows")]
[NoEffectFlag("optimizer", "Osprey trains with AdamW")]
[NoEffectFlag("check_model", "Osprey checks each weight file as it loads it")]
[NoEffectFlag("use_flash_ckpt", "checkpoints are written to a temporary folder and renamed")]
public sealed record TrainerOptions
{
    private const string OneDevice = "Osprey shards with --deepspeed/--fsdp over NPROC_PER_NODE workers (docs/distributed.md); this DeepSpeed/FSDP knob has no counterpart";
    private const string Loader = "Osprey builds batches in-process; there are no data-loader workers";
    private const string Python = "it configures a Python library that Osprey does not use";
    private const string Report = "Osprey always writes logging.jsonl, TensorBoard events under <run>/runs and loss plots under <run>/images";
    private const string NotYet = "this training feature is not in Osprey yet";
    private const string EvalLoss = "evaluation measures loss and token accuracy (and benchmarks with --eval_dataset); --metric_for_best_model picks the best checkpoint";
    private const string NoGeneration = "training does not generate (no --predict_with_generate, GRPO, PPO or GKD here)";

    /// <summary>LoRA adapters or full training.</summary>
    [Option("train_type", "lora trains adapters on a frozen base; full trains the weights themselves.", Aliases = ["tuner_type", "sft_type"], Common = true)]
    public TrainType TrainType { get; init; } = TrainType.Lora;

    /// <summary>The adapter to train when <see cref="TrainType"/> is lora.</summary>
    [OptionGroup]
    public LoraOptions Lora { get; init; } = new();

    /// <summary>--push_to_hub and the other upload flags: upload the last checkpoint when training ends (Hub.HubUpload).</summary>
    [OptionGroup] public Models.HubPushOptions Push { get; init; } = new();

    /// <summary>Full training: parameter-name prefixes kept frozen.</summary>
    [Option("freeze_parameters", "Full training: parameter-name prefixes to keep frozen.", Placeholder = "P...")]
    public IReadOnlyList<string> FreezeParameters { get; init; } = [];

    /// <summary>Full training: prefixes trained even if frozen above.</summary>
    [Option("trainable_parameters", "Full training: prefixes trained even when --freeze_parameters names them.", Placeholder = "P...")]
    public IReadOnlyList<string> TrainableParameters { get; init; } = [];

    /// <summary>Passes over the training set; fractional values stop part-way.</summary>
    [Option("num_train_epochs", "Passes over the data (fractions stop part-way).", Common = true)]
    public double NumTrainEpochs { get; init; } = 3;

    /// <summary>Total optimizer steps; overrides epochs when positive.</summary>
    [Option("max_steps", "Total optimizer steps instead of epochs (-1: use --num_train_epochs).")]
    public long MaxSteps { get; init; } = -1;

    /// <summary>Samples per micro-batch.</summary>
    [Option("per_device_train_batch_size", "Samples per micro-batch.", Aliases = ["batch_size"], Common = true)]
    public int BatchSize { get; init; } = 1;

    /// <summary>Samples per evaluation batch.</summary>
    [Option("per_device_eval_batch_size", "Samples per evaluation batch.")]
    public int EvalBatchSize { get; init; } = 1;

    /// <summary>Micro-batches per optimizer step; null takes <see cref="ResolvedGradientAccumulationSteps"/>.</summary>
    [Option("gradient_accumulation_steps", "Micro-batches per optimizer step.", DefaultText = "enough for a total batch of 16, as ms-swift", Common = true)]
    public int? GradientAccumulationSteps { get; init; }

    /// <summary>Peak learning rate; null takes <see cref="ResolvedLearningRate"/>.</summary>
    [Option("learning_rate", "Peak learning rate.", DefaultText = "1e-4 for LoRA, 1e-5 for full", Common = true)]
    public double? LearningRate { get; init; }

    /// <summary>The decay after warm-up.</summary>
    [Option("lr_scheduler_type", "Learning-rate decay after warm-up.")]
    public LrSchedulerType LrSchedulerType { get; init; } = LrSchedulerType.Cosine;

    /// <summary>Warm-up as a fraction of the total steps.</summary>
    [Option("warmup_ratio", "Linear warm-up as a fraction of the total steps.")]
    public double WarmupRatio { get; init; }

    /// <summary>Warm-up steps; wins over the ratio when positive.</summary>
    [Option("warmup_steps", "Linear warm-up steps (wins over --warmup_ratio when positive).")]
    public long WarmupSteps { get; init; }

    /// <summary>AdamW's decoupled weight decay (not applied to biases and norms).</summary>
    [Option("weight_decay", "AdamW weight decay (biases and norm weights get none).")]
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>AdamW β1.</summary>
    [Option("adam_beta1", "AdamW beta1.")]
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary>AdamW β2 (ms-swift's 0.95).</summary>
    [Option("adam_beta2", "AdamW beta2.")]
    public double AdamBeta2 { get; init; } = 0.95;

    /// <summary>AdamW ε.</summary>
    [Option("adam_epsilon", "AdamW epsilon.")]
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Gradient clipping by global norm.</summary>
    [Option("max_grad_norm", "Clip gradients to this global norm.")]
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>LoRA+: B matrices learn this many times faster (null: off).</summary>
    [Option("lorap_lr_ratio", "LoRA+: the B matrices' learning rate is this many times the A matrices'.")]
    public double? LoraPlusLrRatio { get; init; }

    /// <summary>Vision-language models: keep the vision tower (ViT) frozen (ms-swift's --freeze_vit).</summary>
    [Option("freeze_vit", "Vision-language models: keep the vision tower frozen; false trains it (full training, or LoRA on its linear layers with --target_modules all-linear).")]
    public bool FreezeVit { get; init; } = true;

    /// <summary>Vision-language models: keep the aligner (Qwen2-VL's patch merger) frozen.</summary>
    [Option("freeze_aligner", "Vision-language models: keep the aligner (the patch merger) frozen; false trains it as --freeze_vit false does the tower.")]
    public bool FreezeAligner { get; init; } = true;

    /// <summary>Vision-language models: keep the language model frozen.</summary>
    [Option("freeze_llm", "Vision-language models: keep the language model frozen (full training freezes its weights; LoRA with all-linear adds no adapters to it).")]
    public bool FreezeLlm { get; init; }

    /// <summary>Vision-language models: the vision tower's learning rate when it trains (null: --learning_rate).</summary>
    [Option("vit_lr", "Vision-language models: learning rate of the vision tower when --freeze_vit false.", DefaultText = "--learning_rate")]
    public double? VitLr { get; init; }

    /// <summary>Vision-language models: the aligner's learning rate when it trains (null: --learning_rate).</summary>
    [Option("aligner_lr", "Vision-language models: learning rate of the aligner when --freeze_aligner false.", DefaultText = "--learning_rate")]
    public double? AlignerLr { get; init; }

    /// <summary>Recompute layer activations in backward instead of keeping them.</summary>
    [Option("gradient_checkpointing", "Recompute layer activations in backward (less memory, more compute).")]
    public bool GradientCheckpointing { get; init; } = true;

    /// <summary>ms-swift's DeepSpeed preset or config file, mapped to Osprey's sharding (<see cref="ShardingPlan"/>).</summary>
    [Option("deepspeed", "Shard over the NPROC_PER_NODE workers: zero2 (optimizer state and gradients), zero3 (also weights), zero2_offload/zero3_offload (optimizer state in CPU memory), or a DeepSpeed JSON file (its stage is read).", Placeholder = "zero2|zero3|zero3_offload|FILE")]
    public string? DeepSpeed { get; init; }

    /// <summary>ms-swift's FSDP strategy words, mapped to Osprey's sharding (<see cref="ShardingPlan"/>).</summary>
    [Option("fsdp", "FSDP strategy: full_shard (as ZeRO-3) or shard_grad_op (as ZeRO-2), optionally with offload.", Placeholder = "STRATEGY")]
    public string? Fsdp { get; init; }

    /// <summary>The sharding that --deepspeed or --fsdp asks for.</summary>
    public ShardingPlan Sharding => ShardingPlan.Resolve(DeepSpeed, Fsdp);

    /// <summary>Start on CUDA even when the memory-fit check predicts the run will not fit (MemoryFit.MemoryAdvisor).</summary>
    [Option("ignore_memory_check", "Start even when the predicted peak GPU memory exceeds what is free (see osprey estimate).")]
    public bool IgnoreMemoryCheck { get; init; }

    /// <summary>Seeds adapter init, data order, dropout and splitting.</summary>
    [Option("seed", "Seed for initialisation, data order, dropout, shuffling, splitting and #N sampling.")]
    public int Seed { get; init; } = 42;

    /// <summary>Steps between log records.</summary>
    [Option("logging_steps", "Steps between logging.jsonl records.")]
    public int LoggingSteps { get; init; } = 5;

    /// <summary>Whether checkpoints are written.</summary>
    [Option("save_strategy", "steps writes checkpoints; no writes none (benchmarks).")]
    public SaveStrategy SaveStrategy { get; init; } = SaveStrategy.Steps;

    /// <summary>Steps between checkpoints.</summary>
    [Option("save_steps", "Steps between checkpoints.")]
    public int SaveSteps { get; init; } = 500;

    /// <summary>Steps between evaluations (null: <see cref="SaveSteps"/>).</summary>
    [Option("eval_steps", "Steps between evaluations.", DefaultText = "--save_steps")]
    public int? EvalSteps { get; init; }

    /// <summary>--eval_use_evalscope: benchmark evaluation at every evaluation step (also on when <see cref="EvalDatasets"/> is given).</summary>
    [Option("eval_use_evalscope", "Evaluate benchmarks (--eval_dataset) on the current weights at every evaluation step, as osprey eval does.", DefaultText = "true with --eval_dataset")]
    public bool? EvalUseEvalscope { get; init; }

    /// <summary>--eval_dataset: the benchmarks evaluated during training (osprey eval's set names).</summary>
    [Option("eval_dataset", "Benchmarks evaluated at every evaluation step (osprey eval's names: mmlu, gsm8k, general_mcq, …); scores are logged as eval_<name>.", Placeholder = "NAME...")]
    public IReadOnlyList<string> EvalDatasets { get; init; } = [];

    /// <summary>--eval_dataset_args: osprey eval's --dataset_args for <see cref="EvalDatasets"/>.</summary>
    [Option("eval_dataset_args", "Per-benchmark settings as JSON, as osprey eval's --dataset_args: '{\"general_mcq\": {\"local_path\": \"DIR\"}}'.", Placeholder = "JSON")]
    public string? EvalDatasetArgs { get; init; }

    /// <summary>--eval_limit: items per subset of each benchmark during training.</summary>
    [Option("eval_limit", "Evaluate at most N items of each benchmark subset during training.", DefaultText = "all")]
    public int? EvalLimit { get; init; }

    /// <summary>--eval_generation_config: generation settings of generative benchmarks during training.</summary>
    [Option("eval_generation_config", "Generation settings of the benchmarks as JSON (osprey eval's), e.g. '{\"max_tokens\": 256}'.", Placeholder = "JSON")]
    public string? EvalGenerationConfig { get; init; }

    /// <summary>--metric_for_best_model: the evaluation value that picks the best checkpoint (null: loss).</summary>
    [Option("metric_for_best_model", "The evaluation value that picks best_model_checkpoint: loss (eval_loss) or a benchmark name such as mmlu (eval_mmlu).", DefaultText = "loss")]
    public string? MetricForBestModel { get; init; }

    /// <summary>--greater_is_better: whether a higher <see cref="MetricForBestModel"/> is better (null: false for loss, true otherwise).</summary>
    [Option("greater_is_better", "Whether a higher --metric_for_best_model value is better.", DefaultText = "false for loss, true otherwise")]
    public bool? GreaterIsBetter { get; init; }

    /// <summary>True when benchmarks are evaluated during training.</summary>
    public bool BenchmarkEvaluation => EvalUseEvalscope ?? EvalDatasets.Count > 0;

    /// <summary>The logging.jsonl key that picks the best checkpoint: <c>eval_loss</c>, or <c>eval_</c> + the named metric (as transformers' Trainer).</summary>
    public string ResolvedMetricForBestModel => MetricForBestModel is null or "loss" or "eval_loss" ? "eval_loss"
        : MetricForBestModel.StartsWith("eval_", StringComparison.Ordinal) ? MetricForBestModel : "eval_" + MetricForBestModel;

    /// <summary>Whether higher values of <see cref="ResolvedMetricForBestModel"/> are better.</summary>
    public bool ResolvedGreaterIsBetter => GreaterIsBetter ?? ResolvedMetricForBestModel is not "eval_loss";

    /// <summary>Checkpoints kept (the newest ones plus the best); null keeps all.</summary>
    [Option("save_total_limit", "Checkpoints to keep: the newest ones plus the best (default: all).")]
    public int? SaveTotalLimit { get; init; }

    /// <summary>Checkpoints without optimizer state (smaller; cannot resume exactly).</summary>
    [Option("save_only_model", "Checkpoints without optimizer state (cannot resume exactly).")]
    public bool SaveOnlyModel { get; init; }

    /// <summary>A checkpoint-N folder to continue from.</summary>
    [Option("resume_from_checkpoint", "Continue a run exactly from its checkpoint-N folder.", Placeholder = "DIR")]
    public string? ResumeFromCheckpoint { get; init; }

    /// <summary>With a checkpoint: load only its weights and start a fresh run.</summary>
    [Option("resume_only_model", "With --resume_from_checkpoint: load the weights only and start a new run.")]
    public bool ResumeOnlyModel { get; init; }

    /// <summary>The peak learning rate: <see cref="LearningRate"/>, else ms-swift's 1e-4 for LoRA and 1e-5 for full training.</summary>
    public double ResolvedLearningRate => LearningRate ?? (TrainType == TrainType.Full ? 1e-5 : 1e-4);

    /// <summary>Micro-batches per step: <see cref="GradientAccumulationSteps"/>, else enough that the total batch reaches 16 (ms-swift).</summary>
    public int ResolvedGradientAccumulationSteps => GradientAccumulationSteps ?? Math.Max(1, (16 + Math.Max(1, BatchSize) - 1) / Math.Max(1, BatchSize));

    /// <summary>Checks every value once, naming the flag and the fix.</summary>
    /// <exception cref="OspreyException">A value is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(TrainType)) throw new OspreyException($"--train_type '{TrainType}' is not supported; use lora or full.");
        if (TrainType == TrainType.Lora) Lora.Validate();
        if (BatchSize < 1) throw new OspreyException($"--per_device_train_batch_size must be at least 1 (got {BatchSize}).");
        if (EvalBatchSize < 1) throw new OspreyException($"--per_device_eval_batch_size must be at least 1 (got {EvalBatchSize}).");
        if (GradientAccumulationSteps is < 1) throw new OspreyException($"--gradient_accumulation_steps must be at least 1 (got {GradientAccumulationSteps}).");
        if (!(ResolvedLearningRate > 0)) throw new OspreyException($"--learning_rate must be positive (got {LearningRate}).");
        if (!Enum.IsDefined(LrSchedulerType)) throw new OspreyException($"--lr_scheduler_type '{LrSchedulerType}' is not supported; use cosine, linear, constant or constant_with_warmup.");
        if (WarmupRatio is < 0 or > 1) throw new OspreyException($"--warmup_ratio must be in [0, 1] (got {WarmupRatio}).");
        if (MaxSteps <= 0 && !(NumTrainEpochs > 0)) throw new OspreyException("--num_train_epochs must be positive, or give --max_steps.");
        if (LoggingSteps < 1) throw new OspreyException($"--logging_steps must be at least 1 (got {LoggingSteps}).");
        if (!Enum.IsDefined(SaveStrategy)) throw new OspreyException($"--save_strategy '{SaveStrategy}' is not supported; use steps or no.");
        if (SaveSteps < 1) throw new OspreyException($"--save_steps must be at least 1 (got {SaveSteps}).");
        if (EvalSteps is < 1) throw new OspreyException($"--eval_steps must be at least 1 (got {EvalSteps}).");
        if (SaveTotalLimit is < 1) throw new OspreyException($"--save_total_limit must be at least 1 (got {SaveTotalLimit}).");
        if (AdamBeta1 is < 0 or >= 1 || AdamBeta2 is < 0 or >= 1) throw new OspreyException("--adam_beta1 and --adam_beta2 must be in [0, 1).");
        if (VitLr is <= 0 || AlignerLr is <= 0) throw new OspreyException($"--vit_lr and --aligner_lr must be positive (got {VitLr}, {AlignerLr}).");
        if (LoraPlusLrRatio is <= 0) throw new OspreyException($"--lorap_lr_ratio must be positive (got {LoraPlusLrRatio}).");
        if (EvalUseEvalscope == true && EvalDatasets.Count == 0) throw new OspreyException("--eval_use_evalscope true needs --eval_dataset NAME...; name the benchmarks to evaluate (e.g. --eval_dataset mmlu).");
        if (EvalUseEvalscope == false && EvalDatasets.Count > 0) throw new OspreyException("--eval_dataset names benchmarks but --eval_use_evalscope is false; drop one of the two.");
        if (Sharding.Stage == ZeroStage.Zero3 && !GradientCheckpointing)
            throw new OspreyException("--deepspeed zero3 gathers each layer's weights again for its recompute in the backward pass, so it needs --gradient_checkpointing true.");
        if (Sharding.Stage == ZeroStage.Zero3 && EvalDatasets.Count > 0)
            throw new OspreyException("--eval_dataset benchmarks generate with whole weights, which --deepspeed zero3 does not keep; use zero2, or evaluate the checkpoints with osprey eval.");
        if (EvalLimit is < 1) throw new OspreyException($"--eval_limit must be at least 1 (got {EvalLimit}).");
    }
}
