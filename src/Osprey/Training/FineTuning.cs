using Osprey.Inference;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Distributed;
using Osprey.Hub;
using Osprey.Options;
using Osprey.Templates;
using Osprey.Tokenization;
using Osprey.Training.Preference;
using Osprey.Training.Recipes;

namespace Osprey.Training;

/// <summary>
/// The library call under <c>osprey sft</c>, <c>osprey pt</c> and <c>osprey rlhf</c> (and the web UI's training tabs):
/// resolves the model, encodes the data (through the encoding cache), makes the run folder and its args.json, and runs
/// the method's recipe. Log lines go to <c>log</c>, progress after every step to <c>progress</c>; cancelling stops
/// after the current step and saves a checkpoint to resume from.
/// </summary>
/// <example>
/// <code>
/// var result = FineTuning.Sft(new SftOptions
/// {
///     Model = new() { Model = "Qwen/Qwen2.5-0.5B-Instruct" },
///     Data = new() { Datasets = ["data.jsonl"] },
///     Trainer = new() { MaxSteps = 100, Lora = new() { Rank = 16 } },
/// }, Console.Error);
/// Console.WriteLine(result.LastCheckpoint);
/// </code>
/// </example>
public static class FineTuning
{
    /// <summary>
    /// Supervised fine-tuning: loss on the assistant turns (<c>--loss_scale default</c>). <paramref name="evaluation"/>
    /// evaluates benchmarks at each evaluation step (needed when <c>--eval_dataset</c> is given; the CLI makes it).
    /// </summary>
    public static TrainingResult Sft(SftOptions options, TextWriter? log = null, Action<TrainingProgress>? progress = null, CancellationToken cancel = default, EvaluationHook? evaluation = null) =>
        Pushed(RunSequences("sft", options, LossScale.Default, log ?? TextWriter.Null, progress, cancel, evaluation), options, log ?? TextWriter.Null, cancel);

    /// <summary>Continued pre-training: <see cref="Sft"/> with loss on every token (<c>--loss_scale all</c>).</summary>
    public static TrainingResult Pretrain(SftOptions options, TextWriter? log = null, Action<TrainingProgress>? progress = null, CancellationToken cancel = default, EvaluationHook? evaluation = null) =>
        Pushed(RunSequences("pt", options, LossScale.All, log ?? TextWriter.Null, progress, cancel, evaluation), options, log ?? TextWriter.Null, cancel);

    /// <summary>Preference training: DPO, SimPO, CPO, ORPO, KTO or a reward model, by <c>--rlhf_type</c>.</summary>
    public static TrainingResult Rlhf(RlhfOptions options, TextWriter? log = null, Action<TrainingProgress>? progress = null, CancellationToken cancel = default, EvaluationHook? evaluation = null)
    {
        log ??= TextWriter.Null;
        options = options with
        {
            Loss = options.Loss with { Beta = options.Loss.ResolvedBeta, CpoAlpha = options.Loss.ResolvedCpoAlpha },
            FineTune = Resolved(options.FineTune, LossScale.LastRound),
        };
        var o = options.FineTune;
        options.Validate();
        Check("rlhf", o, preference: true);
        var ranks = DistributedEnvironment.Current is { IsWorker: true, WorldSize: > 1 } several ? several.WorldSize : 1;
        if (ranks > 1 && options.Loss.RlhfType is RlhfType.Grpo or RlhfType.Ppo)
            throw new OspreyException($"osprey rlhf --rlhf_type {Options.OptionSet.ChoiceText(options.Loss.RlhfType)} trains on one device for now (sft, pt and the offline methods dpo, simpo, cpo, orpo, kto and rm run on several); start it without NPROC_PER_NODE or torchrun.");
        if (ranks > 1 && o.Trainer.Sharding.Stage == ZeroStage.Zero3)
            throw new OspreyException("--deepspeed zero3 (and --fsdp full_shard) is not supported by osprey rlhf: its reference and preference passes do not gather sharded layers; use --deepspeed zero2, which shards the optimizer state and gradients.");
        if (ranks == 1 && o.Trainer.Sharding.Stage != ZeroStage.None)
        {
            // One process: there is nothing to shard over, so ms-swift's scripts that pass --deepspeed run as before.
            log.WriteLine("osprey: --deepspeed/--fsdp has no effect on a single-process osprey rlhf (nothing to shard over).");
            options = options with { FineTune = o with { Trainer = o.Trainer with { DeepSpeed = null, Fsdp = null } } };
            o = options.FineTune;
        }
        CheckEvaluation(o, evaluation);
        if (evaluation is not null && options.Loss.RlhfType == RlhfType.RewardModel)
            throw new OspreyException("--eval_dataset evaluates a language model, but --rlhf_type rm trains a reward model with a score head instead of the LM head; drop --eval_dataset.");
        var folder = o.Model.ResolveFolder(log);
        if (options.Loss.RlhfType is RlhfType.Grpo or RlhfType.Ppo) return Pushed(RunGrpo(options, folder, log, progress, cancel), o, log, cancel);
        // Launched with RANK/WORLD_SIZE: meet the other ranks (data parallel, as sft). Only rank 0 talks.
        using var group = ProcessGroup.Join(DistributedEnvironment.Current);
        if (!group.IsMain)
        {
            log = TextWriter.Null;
            progress = null;
        }
        options = options with { FineTune = WithModelContext(o, folder) };
        o = options.FineTune;
        MemoryFit.MemoryAdvisor.CheckBeforeLoading(o, folder, log);
        var tokenizer = LoadTokenizer(folder);
        var loss = options.Loss;
        var kto = loss.RlhfType == RlhfType.Kto;
        if (kto && o.Trainer.BatchSize < 2) throw new OspreyException("--rlhf_type kto needs --per_device_train_batch_size 2 or more: its KL estimate pairs each prompt with another example's response.");
        var encoder = new DatasetEncoder(tokenizer, o.Encoding.ToEncodingOptions(o.Data.Strict, packing: false));
        var stats = new EncodingStats();
        IReadOnlyList<PreferencePair> train = [], validation = [];
        IReadOnlyList<KtoExample> ktoTrain = [], ktoValidation = [];
        if (UsesImageRows(o, folder))
        {
            // A vision-language model on local .jsonl rows: ms-swift's multimodal preference rows, images preprocessed up front.
            var processor = Models.VisionInput.Read(folder, o.Encoding.ImageSizes)!;
            if (kto)
            {
                var (kept, held) = SplitImageRows(o, file => VisionPreferenceEncoding.EncodeKto(encoder, processor, [file], stats), log);
                (ktoTrain, ktoValidation) = (kept, [.. held, .. VisionPreferenceEncoding.EncodeKto(encoder, processor, o.Data.ValDatasets)]);
            }
            else
            {
                var (kept, held) = SplitImageRows(o, file => VisionPreferenceEncoding.EncodePairs(encoder, processor, [file], stats), log);
                (train, validation) = (kept, [.. held, .. VisionPreferenceEncoding.EncodePairs(encoder, processor, o.Data.ValDatasets)]);
            }
        }
        else
        {
            var loaded = DatasetLoader.Load(DataOptions(o), log);
            if (kto) (ktoTrain, ktoValidation) = (PreferenceEncoding.EncodeKto(encoder, loaded.Train, stats), PreferenceEncoding.EncodeKto(encoder, loaded.Validation));
            else (train, validation) = (PreferenceEncoding.EncodePairs(encoder, loaded.Train, stats), PreferenceEncoding.EncodePairs(encoder, loaded.Validation));
        }
        var data = new PreferenceRun
        {
            Train = train,
            Validation = validation,
            KtoTrain = ktoTrain,
            KtoValidation = ktoValidation,
            Loss = loss,
            ReferenceModel = options.ReferenceModel is null ? null : HubCache.ResolveModel(options.ReferenceModel),
            ReferenceAdapters = options.ReferenceAdapters,
            PrecomputeReferenceLogProbs = options.PrecomputeReferenceLogProbs,
        };
        stats.Report(log, o.Encoding.MaxLength);
        var type = OptionSet.ChoiceText(loss.RlhfType);
        log.WriteLine($"osprey: {data.TrainCount} training {(kto ? "examples" : "pairs")}, {data.ValidationCount} validation; {type} with beta {loss.ResolvedBeta}.");
        var run = NewRun("rlhf", OptionSet.For<RlhfOptions>().ToJson(options), o, folder, log, progress) with { Evaluation = evaluation, Group = group };
        // Every rank writes into rank 0's run folder.
        if (group.WorldSize > 1) run = run with { RunDirectory = group.BroadcastText(run.RunDirectory) };
        var result = loss.RlhfType switch
        {
            RlhfType.Kto => KtoRecipe.Run(run, data, cancel),
            RlhfType.RewardModel => RewardModelRecipe.Run(run, data, cancel),
            _ => PairwisePreferenceRecipe.Run(run, data, cancel),
        };
        return Pushed(result, o, log, cancel);
    }

    /// <summary>
    /// GRPO: prompts from each --dataset file (messages ending with a user turn, or query rows; every other column is
    /// kept for the reward functions), encoded with the model's chat template and its generation header.
    /// </summary>
    static TrainingResult RunGrpo(RlhfOptions options, string folder, TextWriter log, Action<TrainingProgress>? progress, CancellationToken cancel)
    {
        var o = options.FineTune;
        if (o.Trainer.BenchmarkEvaluation) throw new OspreyException($"--eval_dataset is not supported with --rlhf_type {OptionSet.ChoiceText(options.Loss.RlhfType)} yet; drop it.");
        var chat = Inference.ChatPrompt.Create(LoadTokenizer(folder), folder, o.Encoding.Template);
        var prompts = new List<Grpo.GrpoPrompt>();
        foreach (var file in o.Data.Datasets)
        {
            if (!File.Exists(file)) throw new OspreyException($"--dataset {file} is not a file; GRPO reads local .jsonl/.json files of {{\"messages\": [...]}} rows ending with a user message (other columns, e.g. \"solution\", go to the reward functions).");
            foreach (var row in Inference.InferenceDataset.Read(file, o.Encoding.System))
                prompts.Add(new Grpo.GrpoPrompt(Inference.InferenceDataset.Encode(chat, row), row.Messages, row.Record, row.Where));
        }
        var maxPrompt = prompts.Count == 0 ? 0 : prompts.Max(p => p.Ids.Length);
        var sampling = Inference.SamplingParams.FromModel(Models.ModelRegistry.ReadSpec(folder), Inference.GenerationConfigFile.Read(folder));
        var stopIds = chat.StopIds(sampling.StopTokenIds);
        var data = new Grpo.GrpoRun
        {
            Prompts = prompts,
            Options = options.Grpo,
            Loss = options.Loss,
            Sampling = sampling with { StopTokenIds = stopIds },
            Decode = ids => chat.DecodeReply(ids, stopIds),
            Tokenizer = chat.Tokenizer,
            ReferenceModel = options.ReferenceModel is null ? null : HubCache.ResolveModel(options.ReferenceModel),
        };
        var run = NewRun("rlhf", OptionSet.For<RlhfOptions>().ToJson(options), o, folder, log, progress);
        if (options.Loss.RlhfType == RlhfType.Ppo)
        {
            // PPO shares GRPO's prompts, sampling flags and rewards; one completion per prompt.
            var p = options.Ppo;
            log.WriteLine($"osprey: {prompts.Count} PPO prompts (longest {maxPrompt} tokens); completions up to {options.Grpo.MaxCompletionLength} tokens; kl_coef {p.KlCoef}, cliprange {p.ClipRange}, vf_coef {p.VfCoef}, gamma {p.Gamma}, lam {p.Lam}.");
            return PpoRecipe.Run(run, data, p, cancel);
        }
        log.WriteLine($"osprey: {prompts.Count} GRPO prompts (longest {maxPrompt} tokens); {options.Grpo.NumGenerations} completions each, up to {options.Grpo.MaxCompletionLength} tokens; loss {options.Loss.ResolvedLossType}, beta {options.Loss.ResolvedBeta}.");
        return GrpoRecipe.Run(run, data, cancel);
    }

    static TrainingResult RunSequences(string verb, SftOptions options, LossScale lossScale, TextWriter log, Action<TrainingProgress>? progress, CancellationToken cancel, EvaluationHook? evaluation)
    {
        // Launched with RANK/WORLD_SIZE (Osprey's launcher, torchrun, a scheduler): meet the other ranks first. Only
        // rank 0 talks; the others report errors only.
        using var group = ProcessGroup.Join(DistributedEnvironment.Current);
        if (!group.IsMain)
        {
            log = TextWriter.Null;
            progress = null;
        }
        var o = Resolved(options, lossScale);
        Check(verb, o, preference: false);
        CheckEvaluation(o, evaluation);
        var folder = o.Model.ResolveFolder(log);
        o = WithModelContext(o, folder);
        MemoryFit.MemoryAdvisor.CheckBeforeLoading(o, folder, log);
        var tokenizer = LoadTokenizer(folder);
        EncodedDatasets data;
        if (UsesImageRows(o, folder))
        {
            // A vision-language model on local .jsonl rows: ms-swift's multimodal rows, images preprocessed up front
            // (VisionDatasetEncoding); the encoding cache holds tokens only, so these are encoded each run.
            var encoder = new DatasetEncoder(tokenizer, o.Encoding.ToEncodingOptions(o.Data.Strict));
            var processor = Models.VisionInput.Read(folder, o.Encoding.ImageSizes)!;
            var norm = o.Encoding.NormBbox ?? GroundingObjects.DefaultNormBbox(folder);
            var stats = new EncodingStats();
            // --split_dataset_ratio (without --val_dataset) holds out encoded samples of each file, as for text rows.
            var (train, validation) = SplitImageRows(o, file => VisionDatasetEncoding.Encode(encoder, processor, [file], stats, norm), log);
            validation.AddRange(VisionDatasetEncoding.Encode(encoder, processor, o.Data.ValDatasets, norm: norm));
            // --packing: each sample keeps its images and gets its own M-RoPE positions (VisionDatasetEncoding.Pack).
            IReadOnlyList<EncodedSample> packed = o.Encoding.Packing ? VisionDatasetEncoding.Pack(train, o.Encoding.MaxLength!.Value) : train;
            data = new EncodedDatasets(EncodedDataset.FromSamples(packed), EncodedDataset.FromSamples(validation));
            stats.Report(log, o.Encoding.MaxLength);
        }
        else if (o.CachedDatasets.Count > 0)
        {
            var parts = o.CachedDatasets.Select(EncodedDatasets.LoadFolder).ToList();
            data = new EncodedDatasets(
                EncodedDataset.FromSamples(parts.SelectMany(p => p.Train)),
                EncodedDataset.FromSamples(parts.SelectMany(p => p.Validation)));
        }
        else
        {
            var encoding = o.Encoding.ToEncodingOptions(o.Data.Strict);
            var encoder = new DatasetEncoder(tokenizer, encoding);
            var dataOptions = DataOptions(o);
            data = DatasetEncoding.LoadOrEncode(encoder, dataOptions, encoding, folder, o.Encoding.LoadFromCacheFile, () => DatasetLoader.Load(dataOptions, log), new EncodingStats(), log);
        }
        log.WriteLine($"osprey: {data.Train.Count} training samples ({data.Train.TokenCount:N0} tokens), {data.Validation.Count} validation samples.");
        var run = NewRun(verb, OptionSet.For<SftOptions>().ToJson(o), o, folder, log, progress) with { Evaluation = evaluation, Group = group };
        // Every rank must write into rank 0's run folder (its v{N}-time name depends on when and what it saw).
        if (group.WorldSize > 1) run = run with { RunDirectory = group.BroadcastText(run.RunDirectory) };
        return SftRecipe.Run(run, data.Train, data.Validation, cancel);
    }

    /// <summary>
    /// Whether the run trains a vision-language model on ms-swift's multimodal rows: the model folder is Qwen2-VL,
    /// Qwen2.5-VL, LLaVA or LLaVA-NeXT and every --dataset is a local .jsonl file (hub datasets and other formats go through the text path).
    /// </summary>
    static bool UsesImageRows(SftOptions o, string folder) =>
        o.CachedDatasets.Count == 0 && o.Data.Datasets.Count > 0
        && o.Data.Datasets.Concat(o.Data.ValDatasets).All(f => f.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) && File.Exists(f))
        && Models.VisionInput.IsVisionLanguage(folder);

    /// <summary>
    /// Image rows of each --dataset file, encoded by <paramref name="encode"/>, with --split_dataset_ratio's share of
    /// each file held out for validation when no --val_dataset is given (seeded by --seed, as text rows split).
    /// </summary>
    static (List<T> Train, List<T> Held) SplitImageRows<T>(SftOptions o, Func<string, IReadOnlyList<T>> encode, TextWriter log)
    {
        var ratio = o.Data.ValDatasets.Count == 0 ? o.Data.SplitDatasetRatio : 0;
        if (ratio is < 0 or >= 1 || double.IsNaN(ratio))
            throw new OspreyException($"--split_dataset_ratio {ratio.ToString(System.Globalization.CultureInfo.InvariantCulture)} is out of range; use a fraction from 0 (no split) to below 1, e.g. 0.01.");
        var random = new Random(o.Trainer.Seed);
        var train = new List<T>();
        var held = new List<T>();
        foreach (var file in o.Data.Datasets)
        {
            var (kept, heldOut) = DatasetLoader.HoldOut(encode(file), ratio, random, file, log);
            train.AddRange(kept);
            held.AddRange(heldOut);
        }
        return (train, held);
    }

    /// <summary>A checkpoint's files that only resume training; they stay home when the checkpoint is pushed.</summary>
    static readonly string[] TrainingStateFiles = [CheckpointWriter.OptimizerFile, "scheduler.json", "rng_state.json"];

    /// <summary>
    /// ms-swift's <c>--push_to_hub true</c>: when training finished, the last checkpoint (adapters or full weights, tokenizer,
    /// args.json) goes to <c>--hub_model_id</c>; an interrupted run pushes nothing.
    /// </summary>
    static TrainingResult Pushed(TrainingResult result, SftOptions o, TextWriter log, CancellationToken cancel)
    {
        // Rank 0 pushes for the whole job.
        if (!o.Trainer.Push.PushToHub || DistributedEnvironment.Current.Rank != 0) return result;
        if (result.Interrupted || result.LastCheckpoint is null)
        {
            log.WriteLine($"osprey: training stopped early, so nothing was pushed to {o.Trainer.Push.HubModelId}; resume the run (--resume_from_checkpoint) to finish it and push.");
            return result;
        }
        HubUpload.Run(result.LastCheckpoint, o.Trainer.Push, o.Model.UseHf, o.Model.HubToken, log, TrainingStateFiles, cancel);
        return result;
    }

    /// <summary>Benchmark flags need a hook that runs them: Training cannot reach Evaluation itself (one layer).</summary>
    static void CheckEvaluation(SftOptions o, EvaluationHook? evaluation)
    {
        if (o.Trainer.BenchmarkEvaluation && evaluation is null)
            throw new OspreyException("--eval_dataset needs an evaluation hook: the osprey CLI makes one; a program passes evaluation: new EvaluationHook(e.Names, e.Evaluate) with e an Osprey.Evaluation.TrainingEvaluation.");
    }

    /// <summary>The checks every fine-tuning verb makes before loading anything.</summary>
    static void Check(string verb, SftOptions o, bool preference)
    {
        o.Trainer.Validate();
        HubUpload.CheckBeforeRun(o.Trainer.Push, o.Model.UseHf, o.Model.HubToken);
        o.Data.Validate();
        o.Encoding.Validate();
        if (o.Data.Streaming) throw new OspreyException("--streaming is not supported for training yet: the trainer needs the sample count up front; drop --streaming.");
        if (o.Data.Datasets.Count == 0 && o.CachedDatasets.Count == 0)
            throw new OspreyException($"osprey {verb} needs --dataset (files, folders or hub ids){(preference ? "" : " or --cached_dataset")}.");
        if (preference && o.CachedDatasets.Count > 0) throw new OspreyException("--cached_dataset holds single sequences; preference training needs --dataset with chosen/rejected pairs.");
        if (preference && o.Encoding.Packing) throw new OspreyException("--packing is not supported with osprey rlhf: chosen and rejected responses are batched as pairs.");
    }

    static Tokenizer LoadTokenizer(string folder) =>
        File.Exists(Path.Combine(folder, "tokenizer.json"))
            ? Tokenizer.Load(folder)
            : throw new OspreyException($"{folder} has no tokenizer.json; pass a model folder that has its tokenizer files.");

    /// <summary>The dataset options with the run's seed (one <c>--seed</c> drives shuffling, splitting and training).</summary>
    static DatasetOptions DataOptions(SftOptions o) => o.Data with { Seed = o.Trainer.Seed };

    /// <summary>
    /// The options with every default that depends on others filled in (loss scale by method, learning rate by train
    /// type, accumulation by batch size), so the recipe and args.json see the values the run uses.
    /// </summary>
    static SftOptions Resolved(SftOptions o, LossScale methodLossScale) => o with
    {
        Encoding = o.Encoding with { LossScale = o.Encoding.LossScale ?? methodLossScale },
        Trainer = o.Trainer with
        {
            LearningRate = o.Trainer.ResolvedLearningRate,
            GradientAccumulationSteps = o.Trainer.ResolvedGradientAccumulationSteps,
        },
    };

    /// <summary>
    /// The options with an unset --max_length taken from the model's context (max_position_embeddings in config.json,
    /// as ms-swift does), so no sample trains past the positions the model was built for and no row is tokenized
    /// without a bound. Resolved once the model folder is known; left unset when config.json does not say.
    /// </summary>
    static SftOptions WithModelContext(SftOptions o, string folder) =>
        o.Encoding.MaxLength is null && Datasets.ModelContext.Read(folder) is { } context ? o with { Encoding = o.Encoding with { MaxLength = context } } : o;

    static TrainingRun NewRun(string verb, JsonObject flags, SftOptions o, string folder, TextWriter log, Action<TrainingProgress>? progress)
    {
        var modelName = Path.GetFileName(Path.TrimEndingDirectorySeparator(o.Model.Model!));
        var args = new JsonObject { ["command"] = verb };
        foreach (var (key, value) in flags) args[key] = value?.DeepClone();
        return new TrainingRun
        {
            ModelDirectory = folder,
            Load = o.Model.LoadOptions(log),
            Options = o.Trainer,
            RunDirectory = RunDirectories.Next(o.OutputDir ?? Path.Combine("output", modelName), o.AddVersion, DateTime.Now),
            Args = args,
            Log = log,
            Progress = progress,
        };
    }
}
