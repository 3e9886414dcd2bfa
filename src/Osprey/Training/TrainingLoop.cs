using System.Diagnostics;
using System.Text.Json;
using Osprey.Io;
using Osprey.Options;
using Osprey.Runtime;
using Osprey.Training.Reporting;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// The step machinery every recipe composes: the schedule and total steps, optimizer state from a resumed checkpoint,
/// args.json, logging.jsonl/TensorBoard/plots, and per step the clipping, optimizer step, log record, progress,
/// evaluation record and checkpoint. A recipe's loop calls it in order:
/// <c>ShouldStop → (its forward/backward) → CompleteStep → EvaluationDue/RecordEvaluation → SaveIfDue</c>, then
/// <c>Finish</c>.
/// </summary>
internal sealed class TrainingLoop : IDisposable
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    readonly TrainingSession _session;
    readonly LearningRateSchedule _schedule;
    readonly long _stepsPerEpoch;
    readonly TrainingLog? _log; // rank 0 only
    bool _overlapReported;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly List<Dictionary<string, double>> _metricsWindow = [];
    readonly Dictionary<string, double> _stepEvaluation = new(StringComparer.Ordinal);
    Tensor? _lastGradNorm;
    string? _lastCheckpoint;
    bool _warnedMetric;
    bool _interrupted;

    TrainingLoop(TrainingSession session, long stepsPerEpoch, long totalSteps, long startStep, TrainerState state)
    {
        var o = session.Options;
        _session = session;
        _stepsPerEpoch = stepsPerEpoch;
        TotalSteps = totalSteps;
        StartStep = startStep;
        State = state;
        _lastCheckpoint = state.LastCheckpoint;
        var warmup = o.WarmupSteps > 0 ? o.WarmupSteps : (long)Math.Ceiling(o.WarmupRatio * totalSteps);
        _schedule = new LearningRateSchedule(o.LrSchedulerType, o.ResolvedLearningRate, warmup, totalSteps);
        if (session.Group.IsMain)
        {
            _log = new TrainingLog(session.RunDirectory, startStep > 0 ? startStep : null);
            if (session.Run.Evaluation is { } hook) _log.PlotAlso(hook.Names.Select(n => "eval_" + n));
        }
    }

    /// <summary>
    /// Plans the run (total steps from epochs × <paramref name="stepsPerEpoch"/> or max_steps), restores the optimizer
    /// and step of a resumed checkpoint, writes args.json and opens the training log; puts the model in training mode.
    /// </summary>
    /// <exception cref="OspreyException">The checkpoint has no optimizer state to resume from.</exception>
    public static TrainingLoop Start(TrainingSession session, long stepsPerEpoch)
    {
        var o = session.Options;
        var totalSteps = o.MaxSteps > 0 ? o.MaxSteps : (long)Math.Ceiling(o.NumTrainEpochs * stepsPerEpoch);
        long startStep = 0;
        var state = new TrainerState();
        if (session.ResumeState is { } resumeState && !o.ResumeOnlyModel)
        {
            var optimizerFile = Path.Combine(session.Resume!, CheckpointWriter.OptimizerFile);
            if (!File.Exists(optimizerFile))
                throw new OspreyException($"{session.Resume} has no {CheckpointWriter.OptimizerFile} (saved with --save_only_model?); resume it with --resume_only_model true, which restarts the optimizer and schedule.");
            using (var f = SafetensorsFile.Open(optimizerFile)) session.Optimizer.Load(f);
            startStep = resumeState.GlobalStep;
            state = resumeState;
            session.Run.Log.WriteLine($"osprey: resuming {session.RunDirectory} at step {startStep} of {totalSteps}.");
        }
        if (session.Group.IsMain) WriteArgs(session, totalSteps);
        var loop = new TrainingLoop(session, stepsPerEpoch, totalSteps, startStep, state);
        session.Model.train();
        return loop;
    }

    /// <summary>The first step to run (0, or the resumed checkpoint's step).</summary>
    public long StartStep { get; }

    /// <summary>Optimizer steps in the whole run.</summary>
    public long TotalSteps { get; }

    /// <summary>Best/last checkpoints and the last evaluation.</summary>
    public TrainerState State { get; }

    /// <summary>Tokens and losses since the last log line; recipes add the tokens they process.</summary>
    public LogWindow Window { get; } = new();

    /// <summary>The epoch (fractional) after <paramref name="done"/> steps.</summary>
    public double Epoch(long done) => (double)done / _stepsPerEpoch;

    /// <summary>True (and remembered) when <paramref name="cancel"/> fired: the recipe leaves its loop and calls <see cref="Finish"/>.</summary>
    public bool ShouldStop(CancellationToken cancel)
    {
        if (cancel.IsCancellationRequested) _interrupted = true;
        if (_session.Group.WorldSize > 1)
        {
            // All ranks stop at the same step, or one would wait forever in the next collective.
            using var flag = tensor(new long[] { _interrupted ? 1 : 0 }, device: _session.Model.Device);
            _session.Collectives.AllReduceSum([flag]);
            _interrupted = flag.ToInt64() > 0;
        }
        return _interrupted;
    }

    string[]? _metricKeys;

    /// <summary>
    /// A recipe's step metrics summed over ranks (each rank weighted its micro-batches by their share of the whole step,
    /// so the sum is the one-device value). The names come from rank 0, which always has the step's first micro-batch;
    /// a rank without a micro-batch in the step (an epoch's short last step) adds zeros.
    /// </summary>
    Dictionary<string, double> SumOverRanks(Dictionary<string, double> metrics)
    {
        _metricKeys ??= _session.Group.BroadcastText(string.Join('\n', metrics.Keys.Order(StringComparer.Ordinal))).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        using var values = tensor(_metricKeys.Select(k => metrics.GetValueOrDefault(k)).ToArray(), device: _session.Model.Device);
        _session.Collectives.AllReduceSum([values]);
        var summed = values.cpu().data<double>().ToArray();
        return _metricKeys.Select((k, i) => (k, summed[i])).ToDictionary(p => p.k, p => p.Item2);
    }

    /// <summary>
    /// Ends optimizer step <paramref name="step"/> after the recipe's backward passes: clips, steps AdamW at the
    /// scheduled rate, zeroes gradients, and every <c>--logging_steps</c> appends a record (the mean loss over the
    /// window — <paramref name="lossSum"/> / <paramref name="stepTokens"/> per step — with token accuracy, or the
    /// mean of the recipe's <paramref name="metrics"/>). Returns the steps done.
    /// </summary>
    public long CompleteStep(long step, Tensor lossSum, Tensor correct, long stepTokens, Dictionary<string, double>? metrics)
    {
        var o = _session.Options;
        var model = _session.Model;
        var optimizer = _session.Optimizer;
        // The step's loss and accuracy over every rank's micro-batches (gradients are summed inside ClipGradients).
        _session.Collectives.AllReduceSum([lossSum, correct]);
        if (metrics is not null && _session.Group.WorldSize > 1) metrics = SumOverRanks(metrics);
        var gradNorm = optimizer.ClipGradients(o.MaxGradNorm);
        PhaseTimer.Mark(model.Device, "gradient norm + clip");
        if (!_overlapReported && optimizer.LastReduceSplit is { Total: > 0 } split)
        {
            _overlapReported = true;
            _session.Run.Log.WriteLine($"osprey: data parallel: {split.DuringBackward:N0} of {split.Total:N0} gradient elements ({100.0 * split.DuringBackward / split.Total:F1}%, the decoder layers') were all-reduced during the backward pass, layer by layer; the rest after it.");
        }
        var lr = _schedule.RateAt(step);
        optimizer.Step(lr);
        optimizer.ZeroGrad();
        PhaseTimer.Mark(model.Device, "optimizer step");
        _lastGradNorm?.Dispose();
        _lastGradNorm = gradNorm.MoveToOuterDisposeScope();
        Window.Add(lossSum.MoveToOuterDisposeScope(), correct.MoveToOuterDisposeScope(), stepTokens);
        if (metrics is not null) _metricsWindow.Add(metrics);
        var done = step + 1;

        if (done % o.LoggingSteps == 0 || done == TotalSteps)
        {
            if (_session.Group.WorldSize > 1)
            {
                using var tokens = tensor(new[] { Window.Tokens }, device: model.Device);
                _session.Collectives.AllReduceSum([tokens]);
                Window.Tokens = tokens.ToInt64();
            }
            var (loss, acc) = Window.Read();
            var windowMetrics = _metricsWindow.Count == 0 ? null : MeanMetrics(_metricsWindow);
            _metricsWindow.Clear();
            var elapsed = _clock.Elapsed.TotalSeconds;
            var speed = Window.Tokens / Math.Max(1e-9, elapsed - Window.Start);
            var record = new Dictionary<string, object?>
            {
                ["loss"] = loss,
                ["grad_norm"] = (double)_lastGradNorm.ToSingle(),
                ["learning_rate"] = lr,
                ["token_acc"] = acc,
                ["epoch"] = Math.Round(Epoch(done), 4),
                ["global_step"] = done,
                ["max_steps"] = TotalSteps,
                ["tokens_per_second"] = Math.Round(speed, 1),
                ["memory_gib"] = Math.Round(MemoryGiB(model.Device), 3),
                ["elapsed_seconds"] = Math.Round(elapsed, 2),
            };
            if (windowMetrics is not null)
            {
                // Sequence-level objectives report their own metrics instead of token accuracy.
                record.Remove("token_acc");
                foreach (var (k, v) in windowMetrics) record[k] = v;
            }
            if (PhaseTimer.Enabled)
            {
                var steps = done - Math.Max(StartStep, done - o.LoggingSteps);
                foreach (var (phase, ms) in PhaseTimer.TakeTotals()) _session.Run.Log.WriteLine($"osprey profile: steps {done - steps + 1}-{done}: {phase}: {ms / steps:F1} ms/step");
            }
            _log?.Append(record);
            _session.Run.Progress?.Invoke(new TrainingProgress("Train", done, TotalSteps, loss, speed, MemoryGiB(model.Device), elapsed));
            Window.Reset(elapsed);
        }
        else
        {
            _session.Run.Progress?.Invoke(new TrainingProgress("Train", done, TotalSteps, null, 0, 0, _clock.Elapsed.TotalSeconds));
        }
        return done;
    }

    /// <summary>
    /// True when step <paramref name="done"/> is an evaluation step (every <c>--eval_steps</c>, and the last) and there
    /// is something to evaluate: a validation set that is not empty, or benchmarks (<see cref="TrainingRun.Evaluation"/>).
    /// </summary>
    public bool EvaluationDue(long done, int validationCount) =>
        (validationCount > 0 || _session.Run.Evaluation is not null) && (done % (_session.Options.EvalSteps ?? _session.Options.SaveSteps) == 0 || done == TotalSteps);

    /// <summary>Appends an evaluation record, prints <paramref name="line"/> and remembers the loss for the best checkpoint.</summary>
    public void RecordEvaluation(Dictionary<string, object?> record, double evalLoss, string line)
    {
        _log?.Append(record);
        _session.Run.Log.WriteLine(line);
        State.LastEvalLoss = evalLoss;
        Remember(record);
    }

    /// <summary>
    /// Runs the benchmark evaluation hook (if any) on the current weights after step <paramref name="done"/>: evaluation
    /// mode and no gradients while it runs (no dropout, no autograd graph), training mode again after, even when it
    /// fails. Its scores go into logging.jsonl (so TensorBoard and the curves) as <c>eval_&lt;name&gt;</c> and can pick
    /// the best checkpoint; the step's own files go to <c>&lt;run&gt;/eval/step-N</c>.
    /// </summary>
    public void RunBenchmarks(long done)
    {
        // Benchmarks generate without collectives: rank 0 scores them, the others go on to the next step's sync.
        if (_session.Run.Evaluation is not { } hook || !_session.Group.IsMain) return;
        var model = _session.Model;
        IReadOnlyDictionary<string, double> scores;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            scores = hook.Evaluate(model, done, Path.Combine(_session.RunDirectory, "eval", $"step-{done}"));
        }
        finally
        {
            model.train();
        }
        var record = new Dictionary<string, object?>();
        foreach (var (name, score) in scores) record["eval_" + name] = score;
        record["epoch"] = Math.Round(Epoch(done), 4);
        record["global_step"] = done;
        _log?.Append(record);
        _session.Run.Log.WriteLine($"osprey: step {done}: " + string.Join(", ", scores.Select(p => $"eval_{p.Key} {p.Value:F4}")) + ".");
        Remember(record);
    }

    void Remember(Dictionary<string, object?> record)
    {
        foreach (var (key, value) in record)
            if (key.StartsWith("eval_", StringComparison.Ordinal) && value is double d) _stepEvaluation[key] = d;
    }

    /// <summary>The value of --metric_for_best_model in this step's evaluation (null, with one warning, when it was not logged).</summary>
    double? BestModelMetric()
    {
        var key = _session.Options.ResolvedMetricForBestModel;
        if (_stepEvaluation.TryGetValue(key, out var v)) return v;
        if (!_warnedMetric && _stepEvaluation.Count > 0)
        {
            _warnedMetric = true;
            _session.Run.Log.WriteLine($"osprey: --metric_for_best_model: the evaluation logs no {key} (it logs {string.Join(", ", _stepEvaluation.Keys.Order(StringComparer.Ordinal))}); best_model_checkpoint is not tracked.");
        }
        return null;
    }

    /// <summary>Saves a checkpoint at every <c>--save_steps</c> and the last step (unless <c>--save_strategy no</c>).</summary>
    public void SaveIfDue(long done, bool evaluated)
    {
        var o = _session.Options;
        if (o.SaveStrategy == SaveStrategy.Steps && (done % o.SaveSteps == 0 || done == TotalSteps))
            _lastCheckpoint = Save(done, evaluated ? BestModelMetric() : null);
        if (evaluated) _stepEvaluation.Clear();
    }

    /// <summary>
    /// Ends the run after <paramref name="step"/> steps: an interrupted run saves a checkpoint to resume from, then the
    /// summary record and the plots are written.
    /// </summary>
    public TrainingResult Finish(long step)
    {
        var o = _session.Options;
        _lastGradNorm?.Dispose();
        _lastGradNorm = null;
        if (_interrupted && o.SaveStrategy == SaveStrategy.Steps && step > StartStep && (_lastCheckpoint is null || RunDirectories.CheckpointStep(_lastCheckpoint) != step))
        {
            _lastCheckpoint = Save(step, null);
            _session.Run.Log.WriteLine($"osprey: interrupted at step {step}; resume with --resume_from_checkpoint {_lastCheckpoint}");
        }
        _log?.Append(new Dictionary<string, object?>
        {
            ["last_model_checkpoint"] = _lastCheckpoint,
            ["best_model_checkpoint"] = State.BestCheckpoint,
            ["best_metric"] = State.BestMetric,
            ["global_step/max_steps"] = $"{step}/{TotalSteps}",
            ["train_runtime"] = Math.Round(_clock.Elapsed.TotalSeconds, 2),
        });
        _log?.TryWritePlots(_session.Run.Log);
        return new TrainingResult(_session.RunDirectory, _lastCheckpoint, State.BestCheckpoint, State.BestMetric, step, _interrupted);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _lastGradNorm?.Dispose();
        _log?.Dispose();
    }

    /// <summary>
    /// Saves step <paramref name="step"/>'s checkpoint: every rank takes part in consolidating a sharded optimizer, rank
    /// 0 writes the usual consolidated files (nothing in them says how many ranks trained), and all wait for it.
    /// </summary>
    string Save(long step, double? metric)
    {
        var optimizer = _session.Optimizer;
        optimizer.Consolidate();
        try
        {
            if (_log is not null) return CheckpointWriter.Save(_session, step, Epoch(step), State, metric, _log);
            State.GlobalStep = step;
            return Path.Combine(_session.RunDirectory, $"checkpoint-{step}");
        }
        finally
        {
            optimizer.ReleaseConsolidated();
            _session.Group.Barrier();
        }
    }

    static Dictionary<string, double> MeanMetrics(List<Dictionary<string, double>> steps) =>
        steps.SelectMany(d => d.Keys).Distinct().ToDictionary(k => k, k => steps.Where(d => d.ContainsKey(k)).Average(d => d[k]));

    static void WriteArgs(TrainingSession session, long totalSteps)
    {
        var args = session.Run.Args.DeepClone().AsObject();
        args["model_dir"] = session.Run.ModelDirectory;
        args["output_dir"] = session.RunDirectory;
        args["train_type"] = OptionSet.ChoiceText(session.Options.TrainType);
        args["max_steps_resolved"] = totalSteps;
        var path = Path.Combine(session.RunDirectory, "args.json");
        File.WriteAllText(path + ".tmp", args.ToJsonString(Indented) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    static double MemoryGiB(Device device)
    {
        if (device.type == DeviceType.CUDA)
        {
            try { return Nvml.UsedBytes(device.index < 0 ? 0 : device.index) / (double)(1L << 30); }
            catch (Exception) { return 0; }
        }
        return Environment.WorkingSet / (double)(1L << 30);
    }
}
