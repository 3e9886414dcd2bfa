using Osprey.Distributed;
using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tuners.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// The setup half every recipe shares, in this order: resume state, run folder, runtime and seeds, the model (with a
/// reward model's score head when asked), its trainable tensors (LoRA adapters or unfrozen weights), weights from a
/// checkpoint, and AdamW over the trainable tensors. Owns the model and the optimizer.
/// </summary>
internal sealed class TrainingSession : IDisposable
{
    readonly bool _ownsGroup;

    TrainingSession(TrainingRun run, string runDirectory, string? resume, TrainerState? resumeState, CausalLM model, AdamW optimizer, ProcessGroup group, bool ownsGroup, ICollectives collectives)
    {
        Group = group;
        _ownsGroup = ownsGroup;
        Collectives = collectives;
        Run = run;
        RunDirectory = runDirectory;
        Resume = resume;
        ResumeState = resumeState;
        Model = model;
        Optimizer = optimizer;
    }

    /// <summary>The run's inputs.</summary>
    public TrainingRun Run { get; }

    /// <summary>The trainer options (shorthand for <c>Run.Options</c>).</summary>
    public TrainerOptions Options => Run.Options;

    /// <summary>Where files go: the new run folder, or the resumed checkpoint's run folder.</summary>
    public string RunDirectory { get; }

    /// <summary>The checkpoint folder resumed from, if any.</summary>
    public string? Resume { get; }

    /// <summary>That checkpoint's trainer_state.json.</summary>
    public TrainerState? ResumeState { get; }

    /// <summary>The model being trained.</summary>
    public CausalLM Model { get; }

    /// <summary>AdamW over the trainable tensors.</summary>
    public AdamW Optimizer { get; }

    /// <summary>The ranks of the run (a group of one unless distributed).</summary>
    public ProcessGroup Group { get; }

    /// <summary>The collectives on the model's device; every rank's gradients, losses and metrics are summed through them.</summary>
    public ICollectives Collectives { get; }

    /// <summary>Sets up a run; <paramref name="scoreHead"/> gives the model a scalar head first (reward models).</summary>
    /// <exception cref="OspreyException">The checkpoint to resume is missing or does not fit the train type.</exception>
    public static TrainingSession Open(TrainingRun run, bool scoreHead = false)
    {
        var o = run.Options;
        var resume = o.ResumeFromCheckpoint is { } r ? Path.GetFullPath(r) : null;
        TrainerState? resumeState = null;
        if (resume is not null)
        {
            if (!Directory.Exists(resume)) throw new OspreyException($"--resume_from_checkpoint {resume} does not exist.");
            resumeState = TrainerState.Read(resume);
        }
        // Resuming continues in the checkpoint's run folder (weights-only resumes start a new one).
        var runDir = resume is not null && !o.ResumeOnlyModel ? Path.GetDirectoryName(resume)! : run.RunDirectory;
        Directory.CreateDirectory(runDir);

        var ownsGroup = run.Group is null;
        var group = run.Group ?? ProcessGroup.Single();
        // With several ranks, cuda (or auto) is cuda:LOCAL_RANK.
        var load = run.Load with { Device = group.DeviceFor(run.Load.Device) };
        var runtime = TorchRuntime.Initialize(load.Device, load.Notice);
        random.manual_seed(o.Seed);
        if (runtime.Device.type == DeviceType.CUDA) cuda.manual_seed_all(o.Seed);
        CausalLM model;
        try
        {
            model = CausalLM.Load(run.ModelDirectory, load);
        }
        catch
        {
            if (ownsGroup) group.Dispose();
            throw;
        }
        try
        {
            // A reward model gets its scalar head before any adapter (transformers' *ForSequenceClassification layout).
            if (scoreHead && !model.IsRewardModel) model.AttachScoreHead(1, o.Seed);
            var trainable = SetUpTrainable(model, o, run.Log);
            if (resume is not null) LoadWeights(model, o, resume);
            var trainableCount = trainable.Sum(p => p.Tensor.numel());
            var totalCount = model.BaseParameters().Sum(p => p.Tensor.numel()) + (o.TrainType == TrainType.Lora ? model.LoraParameters().Sum(p => p.Tensor.numel()) : 0);
            run.Log.WriteLine($"osprey: {model.Spec.ModelType} on {model.Device} in {DTypes.Name(model.DType)}; trainable parameters {trainableCount:N0} of {totalCount:N0} ({100.0 * trainableCount / totalCount:F4}%).");

            var optimizer = new AdamW(o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon);
            foreach (var (name, p) in trainable)
            {
                var decay = NoDecay(name) ? 0 : o.WeightDecay;
                var scale = o.LoraPlusLrRatio is double ratio && name.Contains(".lora_B.", StringComparison.Ordinal) ? ratio : 1.0;
                if (model.ImageInput is { } vision) scale *= VisionFreezing.LrScale(o, vision, name);
                // LoRA matrices share storage with nothing: the optimizer may move them into its flat master buffer.
                var relocatable = o.TrainType == TrainType.Lora && CausalLM.IsAdapterKey(name);
                optimizer.Add(name, p, decay, scale, relocatable);
            }
            var collectives = group.Collectives(model.Device, run.Log);
            // As DDP does at start: every rank begins from rank 0's trainable weights (seeded alike, but a resumed or
            // hand-made model must not drift apart). The identity for a group of one.
            using (no_grad())
                foreach (var (_, p) in trainable) collectives.Broadcast(p, 0);
            var sharding = o.Sharding;
            optimizer.Distribute(collectives, sharding.Stage, sharding.Offload);
            if (group.WorldSize > 1)
                run.Log.WriteLine($"osprey: rank {group.Rank} of {group.WorldSize} on {model.Device}; {(sharding.Stage == ZeroStage.None ? "data parallel" : $"ZeRO-{(int)sharding.Stage}")}{(sharding.Offload ? " with optimizer state in CPU memory" : "")}.");
            return new TrainingSession(run, runDir, resume, resumeState, model, optimizer, group, ownsGroup, collectives);
        }
        catch
        {
            model.Dispose();
            if (ownsGroup) group.Dispose();
            throw;
        }
    }

    /// <summary>The trainable tensors by name: LoRA A/B (and DoRA magnitudes) plus modules_to_save, or the unfrozen base weights.</summary>
    internal static List<(string Name, Parameter Tensor)> SetUpTrainable(CausalLM model, TrainerOptions o, TextWriter log)
    {
        var list = new List<(string, Parameter)>();
        if (o.TrainType == TrainType.Lora)
        {
            // A vision-language model: all-linear covers the unfrozen parts only (--freeze_vit/--freeze_aligner/--freeze_llm).
            var lora = VisionFreezing.LoraFor(model, o);
            var adapted = model.AttachLora(lora, o.Seed);
            log.WriteLine($"osprey: LoRA r={lora.Rank} alpha={lora.Alpha} on {adapted.Count} layers ({string.Join(", ", adapted.Select(a => a.Split('.')[^1]).Distinct())}).");
            list.AddRange(model.LoraParameters());
            foreach (var (name, p) in PeftAdapter.ModulesToSaveParameters(model, lora))
            {
                p.requires_grad_(true);
                list.Add((name, p));
            }
            // A reward model's score head is trained in full and saved with the adapter (PEFT's SEQ_CLS modules_to_save).
            if (model.ScoreWeight is { } score && list.All(p => p.Item1 != "score.weight"))
            {
                score.requires_grad_(true);
                list.Add(("score.weight", score));
            }
            return list;
        }
        if (model.QuantizedLayerCount > 0)
            throw new OspreyException("--train_type full cannot train a quantized base (QLoRA trains adapters on top of it); use --train_type lora, or drop --quant_method.");
        foreach (var (name, p) in model.BaseParameters())
        {
            var frozen = o.FreezeParameters.Any(f => name.StartsWith(f, StringComparison.Ordinal))
                && !o.TrainableParameters.Any(t => name.StartsWith(t, StringComparison.Ordinal));
            // A vision-language model's frozen parts (--freeze_vit, --freeze_aligner, --freeze_llm) keep requires_grad false.
            if (frozen || (model.ImageInput is { } vision && !VisionFreezing.Trains(o, vision, name))) continue;
            p.requires_grad_(true);
            list.Add((name, p));
        }
        if (list.Count == 0) throw new OspreyException("--freeze_parameters (or --freeze_llm/--freeze_vit/--freeze_aligner) freezes every parameter; nothing is left to train.");
        return list;
    }

    static void LoadWeights(CausalLM model, TrainerOptions o, string checkpoint)
    {
        if (o.TrainType == TrainType.Lora)
        {
            if (!PeftAdapter.IsAdapter(checkpoint)) throw new OspreyException($"{checkpoint} holds no adapter_config.json; --resume_from_checkpoint with --train_type lora needs a LoRA checkpoint folder.");
            PeftAdapter.LoadInto(model, checkpoint);
        }
        else
        {
            if (PeftAdapter.IsAdapter(checkpoint)) throw new OspreyException($"{checkpoint} is a LoRA checkpoint; resume it with --train_type lora.");
            using var weights = SafetensorsCheckpoint.Open(checkpoint);
            model.LoadWeights(weights);
        }
    }

    /// <summary>Biases and norm weights get no weight decay (as transformers' Trainer decides).</summary>
    static bool NoDecay(string name)
    {
        var lower = name.ToLowerInvariant();
        if (lower.Contains("bias", StringComparison.Ordinal)) return true;
        var module = lower.Contains('.') ? lower[..lower.LastIndexOf('.')] : lower;
        return module.Split('.')[^1].Contains("norm", StringComparison.Ordinal);
    }

    /// <summary>Rows of one loss chunk for this model (<see cref="LossChunkRowsFor"/>).</summary>
    public long ChunkRows => LossChunkRowsFor(Model.Spec.VocabSize);

    /// <summary>
    /// Rows whose float32 logits make about 256 MiB (at least 64): the loss chunk training uses, and the one
    /// <see cref="MemoryFit.MemoryEstimate"/> predicts, from this one rule.
    /// </summary>
    public static long LossChunkRowsFor(long vocabSize) => Math.Max(64L, (256L << 20) / (4L * vocabSize));

    /// <inheritdoc />
    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
        if (_ownsGroup) Group.Dispose();
    }
}
