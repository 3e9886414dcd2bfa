using Osprey.Serving;
using System.Globalization;
using System.Text.Json.Nodes;
using Osprey.Cli.Args;
using Osprey.Cli.Chat;
using Osprey.Datasets;
using Osprey.Models;
using Osprey.Templates;
using Osprey.Training;
using Osprey.Reporting;
using Osprey.Tuners;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey sft</c>: supervised fine-tuning with LoRA (PEFT adapters) or in full, ms-swift's flags and run layout.
/// <c>osprey pt</c> (<see cref="PtCommand"/>) is the same with loss on every token.
/// </summary>
internal sealed class SftCommand : ICommand
{
    public string Name => "sft";

    public string Summary => "Fine-tune a model on chat or text data: LoRA/DoRA adapters or full training, with checkpoints and resume.";

    public string Usage => Help(pretraining: false);

    internal static string Help(bool pretraining) => ModelFlags.Help + DatasetFlags.Help +
        "  --cached_dataset DIR...  Train on folders written by osprey export --to_cached_dataset (no encoding).\n" +
        "  --template NAME          Chat template (default: the model's own chat_template).\n" +
        "  --system TEXT            System prompt for conversations without one.\n" +
        $"  --loss_scale S           default | last_round | all (default {(pretraining ? "all" : "default")}).\n" +
        "  --max_length N           Longest sample in tokens (default: no limit); see --truncation_strategy.\n" +
        "  --truncation_strategy S  delete | left | right for longer samples (default delete).\n" +
        "  --packing B              Pack samples into --max_length rows (attention stays within each sample).\n" +
        "  --dataset_num_proc N     Encoding threads (default: all cores).  --load_from_cache_file B  reuse encodings (default true).\n" +
        "  --train_type T           lora | full (default lora); --tuner_type is the same flag.\n" +
        "  --lora_rank N            LoRA rank (default 8).   --lora_alpha X  (default 32).   --lora_dropout X (default 0.05).\n" +
        "  --target_modules M...    Modules to adapt: names (q_proj v_proj ...) or all-linear (default).\n" +
        "  --target_regex RE        A regex matching whole module paths instead of --target_modules.\n" +
        "  --modules_to_save M...   Modules trained in full and saved with the adapter (e.g. lm_head embed_tokens).\n" +
        "  --use_dora B             DoRA adapters.   --use_rslora B  alpha/sqrt(r) scaling.   --lorap_lr_ratio X  LoRA+.\n" +
        "  --freeze_parameters P... Full training: parameter-name prefixes to keep frozen. --trainable_parameters P... re-enable.\n" +
        "  --num_train_epochs X     Passes over the data (default 3).   --max_steps N  total steps instead.\n" +
        "  --per_device_train_batch_size N  Samples per micro-batch (default 1).  --per_device_eval_batch_size N (default 1).\n" +
        "  --gradient_accumulation_steps N  Micro-batches per step (default: total batch >= 16, as ms-swift).\n" +
        "  --learning_rate X        Peak rate (default 1e-4 for LoRA, 1e-5 for full).\n" +
        "  --lr_scheduler_type S    cosine | linear | constant | constant_with_warmup (default cosine).\n" +
        "  --warmup_ratio X  --warmup_steps N   Linear warm-up (default 0).\n" +
        "  --weight_decay X (0.1)  --adam_beta1 X (0.9)  --adam_beta2 X (0.95)  --adam_epsilon X (1e-8)  --max_grad_norm X (1).\n" +
        "  --gradient_checkpointing B  Recompute layer activations in backward (default true).\n" +
        "  --logging_steps N (5)  --save_steps N (500)  --eval_steps N (= save_steps)  --save_total_limit N  --save_only_model B.\n" +
        "  --save_strategy S        steps (default) | no (no checkpoints; for benchmarks).\n" +
        "  --output_dir DIR         Where runs go (default output/<model name>); each run is DIR/v{N}-{time}/.\n" +
        "  --add_version B          Put the run in a new v{N}-{time} folder (default true).\n" +
        "  --resume_from_checkpoint DIR  Continue a run exactly from its checkpoint-N folder.\n" +
        "  --resume_only_model B    With --resume_from_checkpoint: load the weights only and start a new run.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, pretraining: false);

    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, bool pretraining) =>
        Run(options, stdout, stderr, pretraining ? "pt" : "sft", null);

    /// <summary>
    /// The training run of <c>sft</c>, <c>pt</c> and <c>rlhf</c> (<paramref name="verb"/>); <paramref name="preference"/>
    /// holds the preference loss for rlhf (its flags are read by <see cref="RlhfCommand"/>).
    /// </summary>
    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, string verb, Training.Preference.PreferenceLossOptions? preference,
        string? referenceModel = null, IReadOnlyList<string>? referenceAdapters = null, bool precomputeReference = false)
    {
        var pretraining = verb == "pt";
        var flags = ModelFlags.Read(options);
        var datasetOptions = DatasetFlags.Read(options);
        var cachedDatasets = options.List("cached_dataset");
        var templateName = options.String("template");
        var system = options.String("system");
        var lossScale = Parse(() => TemplateFlags.ParseLossScale(options.String("loss_scale", pretraining ? "all" : preference is not null ? "last_round" : "default")), "--loss_scale");
        var maxLength = options.Int("max_length");
        var truncation = Parse(() => TemplateFlags.ParseTruncationStrategy(options.String("truncation_strategy", "delete")), "--truncation_strategy");
        var packing = options.Bool("packing", false);
        var threads = options.Int("dataset_num_proc", 0);
        var useCache = options.Bool("load_from_cache_file", true);
        var trainType = options.String("train_type") ?? options.String("tuner_type") ?? "lora";
        var batch = options.Int("per_device_train_batch_size", 1);
        var lora = new LoraOptions
        {
            Rank = options.Int("lora_rank", 8),
            Alpha = options.Double("lora_alpha", 32),
            Dropout = options.Double("lora_dropout", 0.05),
            TargetModules = options.List("target_modules", ["all-linear"]),
            TargetRegex = options.String("target_regex"),
            UseDora = options.Bool("use_dora", false),
            UseRslora = options.Bool("use_rslora", false),
            ModulesToSave = options.List("modules_to_save"),
        };
        var sft = new SftOptions
        {
            TrainType = trainType,
            Lora = lora,
            FreezeParameters = options.List("freeze_parameters"),
            TrainableParameters = options.List("trainable_parameters"),
            NumTrainEpochs = options.Double("num_train_epochs", 3),
            MaxSteps = options.Long("max_steps", -1),
            BatchSize = batch,
            EvalBatchSize = options.Int("per_device_eval_batch_size", 1),
            GradientAccumulationSteps = options.Int("gradient_accumulation_steps") ?? Math.Max(1, (16 + Math.Max(1, batch) - 1) / Math.Max(1, batch)),
            LearningRate = options.Double("learning_rate", trainType == "full" ? 1e-5 : 1e-4),
            LrSchedulerType = options.String("lr_scheduler_type", "cosine"),
            WarmupRatio = options.Double("warmup_ratio", 0),
            WarmupSteps = options.Long("warmup_steps", 0),
            WeightDecay = options.Double("weight_decay", 0.1),
            AdamBeta1 = options.Double("adam_beta1", 0.9),
            AdamBeta2 = options.Double("adam_beta2", 0.95),
            AdamEpsilon = options.Double("adam_epsilon", 1e-8),
            MaxGradNorm = options.Double("max_grad_norm", 1.0),
            LoraPlusLrRatio = options.Double("lorap_lr_ratio"),
            GradientCheckpointing = options.Bool("gradient_checkpointing", true),
            Seed = options.Int("seed", 42),
            LoggingSteps = options.Int("logging_steps", 5),
            SaveSteps = options.Int("save_steps", 500),
            SaveStrategy = options.String("save_strategy", "steps"),
            EvalSteps = options.Int("eval_steps"),
            SaveTotalLimit = options.Int("save_total_limit"),
            SaveOnlyModel = options.Bool("save_only_model", false),
            ResumeFromCheckpoint = options.String("resume_from_checkpoint"),
            ResumeOnlyModel = options.Bool("resume_only_model", false),
        };
        var outputDir = options.String("output_dir");
        var addVersion = options.Bool("add_version", true);
        options.EnsureNoUnknownFlags();

        try { sft.Validate(); }
        catch (OspreyException e) { throw new UserError(e.Message, e); }
        if (maxLength is <= 0) throw new UserError($"--max_length must be positive, got {maxLength}.");
        if (packing && maxLength is null) throw new UserError("--packing needs --max_length N: packed rows are N tokens long.");
        if (datasetOptions.Streaming) throw new UserError("--streaming is not supported for training yet: the trainer needs the sample count up front; drop --streaming.");
        if (datasetOptions.Datasets.Count == 0 && cachedDatasets.Count == 0)
            throw new UserError($"osprey {verb} needs --dataset (files, folders or hub ids){(preference is null ? " or --cached_dataset" : "")}.");
        if (preference is not null && cachedDatasets.Count > 0) throw new UserError("--cached_dataset holds single sequences; preference training needs --dataset with chosen/rejected pairs.");
        if (preference is not null && packing) throw new UserError("--packing is not supported with osprey rlhf: chosen and rejected responses are batched as pairs.");

        var folder = flags.RequireFolder();
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "pass a model folder that has its tokenizer files.");
        EncodedDatasets data;
        PreferenceRun? preferenceRun = null;
        if (preference is not null)
        {
            var encodingOptions = new EncodingOptions
            {
                Template = templateName, System = system, LossScale = lossScale, MaxLength = maxLength, Truncation = truncation,
                Strict = datasetOptions.Strict, Threads = threads,
            };
            try
            {
                var encoder = new DatasetEncoder(tokenizer, encodingOptions);
                var loaded = DatasetLoader.Load(datasetOptions, stderr);
                var stats = new EncodingStats();
                var kto = preference.RlhfType == "kto";
                if (kto && batch < 2) throw new UserError("--rlhf_type kto needs --per_device_train_batch_size 2 or more: its KL estimate pairs each prompt with another example's response.");
                preferenceRun = new PreferenceRun
                {
                    Train = kto ? [] : PreferenceEncoding.EncodePairs(encoder, loaded.Train, stats),
                    Validation = kto ? [] : PreferenceEncoding.EncodePairs(encoder, loaded.Validation),
                    KtoTrain = kto ? PreferenceEncoding.EncodeKto(encoder, loaded.Train, stats) : [],
                    KtoValidation = kto ? PreferenceEncoding.EncodeKto(encoder, loaded.Validation) : [],
                    Loss = preference,
                    ReferenceModel = referenceModel is null ? null : Hub.HubCache.ResolveModel(referenceModel),
                    ReferenceAdapters = referenceAdapters ?? [],
                    PrecomputeReferenceLogProbs = precomputeReference,
                };
                stats.Report(stderr, maxLength);
            }
            catch (OspreyException e)
            {
                throw new UserError(e.Message, e);
            }
            data = new EncodedDatasets(EncodedDataset.Empty, EncodedDataset.Empty);
            stderr.WriteLine($"osprey: {preferenceRun.TrainCount} training {(preference.RlhfType == "kto" ? "examples" : "pairs")}, {preferenceRun.ValidationCount} validation; {preference.RlhfType} with beta {preference.Beta}.");
        }
        else if (cachedDatasets.Count > 0)
        {
            var parts = cachedDatasets.Select(EncodedDatasets.LoadFolder).ToList();
            data = new EncodedDatasets(
                EncodedDataset.FromSamples(parts.SelectMany(p => p.Train)),
                EncodedDataset.FromSamples(parts.SelectMany(p => p.Validation)));
        }
        else
        {
            var encodingOptions = new EncodingOptions
            {
                Template = templateName, System = system, LossScale = lossScale, MaxLength = maxLength, Truncation = truncation,
                Packing = packing, Strict = datasetOptions.Strict, Threads = threads,
            };
            DatasetEncoder encoder;
            try { encoder = new DatasetEncoder(tokenizer, encodingOptions); }
            catch (OspreyException e) { throw new UserError(e.Message, e); }
            data = EncodeCommand.Encoded(encoder, datasetOptions, encodingOptions, folder, useCache, () => DatasetLoader.Load(datasetOptions, stderr), new EncodingStats(), stderr);
        }
        if (preferenceRun is null) stderr.WriteLine($"osprey: {data.Train.Count} training samples ({data.Train.TokenCount:N0} tokens), {data.Validation.Count} validation samples.");

        var modelName = Path.GetFileName(Path.TrimEndingDirectorySeparator(options.String("model")!));
        var runDir = RunDirectories.Next(outputDir ?? Path.Combine("output", modelName), addVersion, DateTime.Now);
        var args = new JsonObject { ["command"] = verb, ["model"] = options.String("model"), ["template"] = templateName };
        foreach (var option in options.Args.Options)
        {
            if (option.Name is "model" or "template" or "config" or "help") continue;
            args[option.Name] = option.Values.Count == 1 ? JsonValue.Create(option.Values[0]) : new JsonArray(option.Values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
        }

        ProgressReporter? reporter = null;
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl-C ends the process at once
            e.Cancel = true;
            cancel.Cancel();
            stderr.WriteLine("\nosprey: stopping after this step and saving a checkpoint (Ctrl-C again to quit at once).");
        };
        Console.CancelKeyPress += onCancel;
        SftResult result;
        try
        {
            var trainer = new SftTrainer(new SftRun
            {
                ModelDirectory = folder,
                Load = flags.LoadOptions(stderr),
                Options = sft,
                Train = data.Train,
                Validation = data.Validation,
                Preference = preferenceRun,
                RunDirectory = runDir,
                PadTokenId = tokenizer.PadToken?.Id ?? tokenizer.EosToken?.Id ?? 0,
                Args = args,
                Log = stderr,
                Progress = p =>
                {
                    reporter ??= new ProgressReporter(stderr, ProgressReporter.IsInteractive(stderr), p.Phase, p.TotalSteps);
                    var fields = new Dictionary<string, string>();
                    if (p.Loss is double loss) fields["loss"] = loss.ToString("F4", CultureInfo.InvariantCulture);
                    if (p.TokensPerSecond > 0) fields["tok/s"] = p.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture);
                    if (p.MemoryGiB > 0) fields["mem"] = p.MemoryGiB.ToString("F2", CultureInfo.InvariantCulture) + "GiB";
                    reporter.Update(p.Step, fields);
                },
            });
            result = trainer.Run(cancel.Token);
        }
        catch (OspreyException e)
        {
            throw new UserError(e.Message, e);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            reporter?.Finish();
        }
        stdout.WriteLine($"run: {result.RunDirectory}");
        stdout.WriteLine($"last_model_checkpoint: {result.LastCheckpoint}");
        if (result.BestCheckpoint is not null) stdout.WriteLine($"best_model_checkpoint: {result.BestCheckpoint} (eval_loss {result.BestMetric:F4})");
        return result.Interrupted ? 130 : 0;
    }

    static T Parse<T>(Func<T> parse, string flag)
    {
        try { return parse(); }
        catch (Exception e) when (e is ArgumentException or OspreyException) { throw new UserError($"{flag}: {e.Message}", e); }
    }
}
