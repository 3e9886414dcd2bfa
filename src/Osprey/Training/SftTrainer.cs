using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Reporting;
using Osprey.Tuners.Lora;
using Osprey.Training.Preference;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// The supervised fine-tuning recipe (also pre-training: the data decides the labels), top to bottom:
/// setup (model, adapters or trainable weights, optimizer, schedule, resume) → loop (accumulate micro-batches,
/// clip, step, log, evaluate, save) → finish (last/best record, plots).
/// </summary>
/// <remarks>
/// Numerics: the model computes in its dtype (bf16 on GPU); trainable tensors have float32 masters and float32
/// AdamW moments (<see cref="AdamW"/>). The loss of an optimizer step is the summed token cross-entropy of all its
/// micro-batches divided by the number of labelled tokens in the whole step (not a mean of per-micro-batch means).
/// Determinism: the data order of epoch e is a shuffle seeded by (seed, e), and dropout is seeded by (seed, step,
/// micro-batch, layer), so the state needed to resume exactly is the weights, the optimizer moments and the step.
/// </remarks>
public sealed class SftTrainer
{
    readonly SftRun _run;
    readonly SftOptions _o;

    /// <summary>Prepares a run; nothing is loaded until <see cref="Run"/>.</summary>
    public SftTrainer(SftRun run)
    {
        _run = run;
        _o = run.Options;
        _o.Validate();
        if ((run.Preference?.TrainCount ?? run.Train.Count) == 0) throw new OspreyException("the training set is empty after encoding; check --dataset and --max_length.");
        run.Preference?.Loss.Validate();
    }

    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires (then a checkpoint is saved so the run can resume).</summary>
    public SftResult Run(CancellationToken cancel = default)
    {
        var o = _o;
        var log = _run.Log;
        var resume = o.ResumeFromCheckpoint is { } r ? Path.GetFullPath(r) : null;
        TrainerState? resumeState = null;
        if (resume is not null)
        {
            if (!Directory.Exists(resume)) throw new OspreyException($"--resume_from_checkpoint {resume} does not exist.");
            resumeState = TrainerState.Read(resume);
        }
        // Resuming continues in the checkpoint's run folder (weights-only resumes start a new one).
        var runDir = resume is not null && !o.ResumeOnlyModel ? Path.GetDirectoryName(resume)! : _run.RunDirectory;
        Directory.CreateDirectory(runDir);

        var runtime = TorchRuntime.Initialize(_run.Load.Device, _run.Load.Notice);
        random.manual_seed(o.Seed);
        if (runtime.Device.type == DeviceType.CUDA) cuda.manual_seed_all(o.Seed);
        using var model = CausalLM.Load(_run.ModelDirectory, _run.Load);
        // A reward model gets its scalar head before any adapter (transformers' *ForSequenceClassification layout).
        if (_run.Preference?.Loss.RlhfType == "rm" && !model.IsRewardModel) model.AttachScoreHead(1, o.Seed);
        var trainable = SetUpTrainable(model);
        if (resume is not null) LoadWeights(model, resume);
        var trainableCount = trainable.Sum(p => p.Tensor.numel());
        var totalCount = model.BaseParameters().Sum(p => p.Tensor.numel()) + (o.TrainType == "lora" ? model.LoraParameters().Sum(p => p.Tensor.numel()) : 0);
        log.WriteLine($"osprey: {model.Spec.ModelType} on {model.Device} in {DTypes.Name(model.DType)}; trainable parameters {trainableCount:N0} of {totalCount:N0} ({100.0 * trainableCount / totalCount:F4}%).");

        using var optimizer = new AdamW(o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon);
        foreach (var (name, p) in trainable)
        {
            var decay = NoDecay(name) ? 0 : o.WeightDecay;
            var scale = o.LoraPlusLrRatio is double ratio && name.Contains(".lora_B.", StringComparison.Ordinal) ? ratio : 1.0;
            // LoRA matrices share storage with nothing: the optimizer may move them into its flat master buffer.
            var relocatable = o.TrainType == "lora" && CausalLM.IsAdapterKey(name);
            optimizer.Add(name, p, decay, scale, relocatable);
        }

        var preference = _run.Preference;
        // Preference runs plan over pairs (the chosen side stands for its pair: the plan uses only the count).
        var plan = new BatchPlan(
            preference is null ? _run.Train : preference.Loss.RlhfType == "kto" ? preference.KtoTrain.Select(k => k.Sample).ToList() : preference.Train.Select(p => p.Chosen).ToList(),
            o.BatchSize, o.GradientAccumulationSteps, o.Seed);
        var reference = LoadReference(preference, model);
        if (preference is { PrecomputeReferenceLogProbs: true, Loss.RlhfType: "dpo" })
        {
            // Every pair's reference scores now, in evaluation mode; the frozen copy is not needed afterwards.
            var clockRef = Stopwatch.StartNew();
            _precomputed = (Precompute(model, reference, preference.Train), Precompute(model, reference, preference.Validation));
            reference?.Dispose();
            reference = null;
            log.WriteLine($"osprey: reference log-probs of {preference.Train.Count + preference.Validation.Count} pairs precomputed in {clockRef.Elapsed.TotalSeconds:F1} s.");
        }
        using var referenceScope = reference;
        var totalSteps = o.MaxSteps > 0 ? o.MaxSteps : (long)Math.Ceiling(o.NumTrainEpochs * plan.StepsPerEpoch);
        var warmup = o.WarmupSteps > 0 ? o.WarmupSteps : (long)Math.Ceiling(o.WarmupRatio * totalSteps);
        var schedule = new LearningRateSchedule(o.LrSchedulerType, o.LearningRate, warmup, totalSteps);
        long startStep = 0;
        var state = new TrainerState();
        if (resumeState is not null && !o.ResumeOnlyModel)
        {
            var optimizerFile = Path.Combine(resume!, OptimizerFile);
            if (!File.Exists(optimizerFile))
                throw new OspreyException($"{resume} has no {OptimizerFile} (saved with --save_only_model?); resume it with --resume_only_model true, which restarts the optimizer and schedule.");
            using (var f = SafetensorsFile.Open(optimizerFile)) optimizer.Load(f);
            startStep = resumeState.GlobalStep;
            state = resumeState;
            log.WriteLine($"osprey: resuming {runDir} at step {startStep} of {totalSteps}.");
        }
        WriteArgs(runDir, totalSteps);

        using var trainingLog = new TrainingLog(runDir, startStep > 0 ? startStep : null);
        model.train();
        var evalSteps = o.EvalSteps ?? o.SaveSteps;
        var chunkRows = Math.Max(64L, (256L << 20) / (4L * model.Spec.VocabSize)); // float32 logits of a chunk: about 256 MiB
        var clock = Stopwatch.StartNew();
        var window = new LogWindow();
        var preferenceWindow = new List<Dictionary<string, double>>();
        Tensor? lastGradNorm = null;
        string? lastCheckpoint = state.LastCheckpoint;
        var interrupted = false;
        long step = startStep;
        for (; step < totalSteps; step++)
        {
            if (cancel.IsCancellationRequested) { interrupted = true; break; }
            using var stepScope = NewDisposeScope();
            PhaseTimer.Restart(model.Device);
            var micro = preference is null ? plan.MicroBatches(step) : [];
            var stepTokens = micro.Sum(m => m.LabelledTokens);
            var lossSum = zeros(1, dtype: ScalarType.Float32, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            if (preference is not null)
            {
                var (stepLoss, metrics, tokens) = preference.Loss.RlhfType switch
                {
                    "kto" => KtoStep(model, reference, preference, preference.KtoTrain, plan.MicroBatchIndices(step), step, chunkRows, backward: true),
                    "rm" => RewardStep(model, preference, preference.Train, plan.MicroBatchIndices(step), step, backward: true),
                    _ => PreferenceStep(model, reference, preference, preference.Train, plan.MicroBatchIndices(step), step, chunkRows, backward: true),
                };
                lossSum.add_(stepLoss);
                preferenceWindow.Add(metrics);
                window.Tokens += tokens;
                stepTokens = 1; // the step's loss is already a mean over its pairs
            }
            for (int i = 0; i < micro.Count; i++)
            {
                var batch = micro[i];
                if (batch.LabelledTokens == 0) continue;
                using var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
                using var labels = tensor(batch.Labels, [batch.Rows, batch.Columns], device: model.Device);
                using var positions = batch.PositionIds is null ? null : tensor(batch.PositionIds, [batch.Rows, batch.Columns], device: model.Device);
                using var result = model.ForwardBackward(ids, labels, positions, new TrainForwardOptions
                {
                    LossScale = 1.0 / stepTokens,
                    GradientCheckpointing = o.GradientCheckpointing,
                    LossChunkRows = chunkRows,
                    DropoutSeed = ((long)o.Seed << 32) ^ (step * 1024 + i),
                });
                lossSum.add_(result.LossSum);
                correct.add_(result.Correct);
                window.Tokens += batch.Tokens;
            }
            var gradNorm = optimizer.ClipGradients(o.MaxGradNorm);
            PhaseTimer.Mark(model.Device, "gradient norm + clip");
            var lr = schedule.RateAt(step);
            optimizer.Step(lr);
            optimizer.ZeroGrad();
            PhaseTimer.Mark(model.Device, "optimizer step");
            lastGradNorm?.Dispose();
            lastGradNorm = gradNorm.MoveToOuterDisposeScope();
            window.Add(lossSum.MoveToOuterDisposeScope(), correct.MoveToOuterDisposeScope(), stepTokens);
            var done = step + 1;
            var epoch = (double)done / plan.StepsPerEpoch;

            if (done % o.LoggingSteps == 0 || done == totalSteps)
            {
                var (loss, acc) = window.Read();
                var preferenceMetrics = preferenceWindow.Count == 0 ? null : MeanMetrics(preferenceWindow);
                preferenceWindow.Clear();
                var elapsed = clock.Elapsed.TotalSeconds;
                var speed = window.Tokens / Math.Max(1e-9, elapsed - window.Start);
                var record = new Dictionary<string, object?>
                {
                    ["loss"] = loss,
                    ["grad_norm"] = (double)lastGradNorm.ToSingle(),
                    ["learning_rate"] = lr,
                    ["token_acc"] = preference is null ? acc : null,
                    ["epoch"] = Math.Round(epoch, 4),
                    ["global_step"] = done,
                    ["max_steps"] = totalSteps,
                    ["tokens_per_second"] = Math.Round(speed, 1),
                    ["memory_gib"] = Math.Round(MemoryGiB(model.Device), 3),
                    ["elapsed_seconds"] = Math.Round(elapsed, 2),
                };
                if (preferenceMetrics is not null)
                {
                    record.Remove("token_acc");
                    foreach (var (k, v) in preferenceMetrics) record[k] = v;
                }
                if (PhaseTimer.Enabled)
                {
                    var steps = done - Math.Max(startStep, done - o.LoggingSteps);
                    foreach (var (phase, ms) in PhaseTimer.TakeTotals()) log.WriteLine($"osprey profile: steps {done - steps + 1}-{done}: {phase}: {ms / steps:F1} ms/step");
                }
                trainingLog.Append(record);
                _run.Progress?.Invoke(new TrainingProgress("Train", done, totalSteps, loss, speed, MemoryGiB(model.Device), elapsed));
                window.Reset(elapsed);
            }
            else
            {
                _run.Progress?.Invoke(new TrainingProgress("Train", done, totalSteps, null, 0, 0, clock.Elapsed.TotalSeconds));
            }

            var evaluate = (preference?.ValidationCount ?? _run.Validation.Count) > 0 && (done % evalSteps == 0 || done == totalSteps);
            if (evaluate && preference is not null)
            {
                var (evalLoss, evalMetrics) = EvaluatePreference(model, reference, preference, chunkRows);
                var evalRecord = new Dictionary<string, object?> { ["eval_loss"] = evalLoss, ["epoch"] = Math.Round(epoch, 4), ["global_step"] = done };
                foreach (var (k, v) in evalMetrics) evalRecord["eval_" + k] = v;
                trainingLog.Append(evalRecord);
                log.WriteLine($"osprey: step {done}: eval_loss {evalLoss:F4}, eval_rewards/accuracies {evalMetrics.GetValueOrDefault("rewards/accuracies", double.NaN):F4}.");
                state.LastEvalLoss = evalLoss;
            }
            else if (evaluate)
            {
                var (evalLoss, evalAcc) = Evaluate(model, chunkRows);
                trainingLog.Append(new Dictionary<string, object?> { ["eval_loss"] = evalLoss, ["eval_token_acc"] = evalAcc, ["epoch"] = Math.Round(epoch, 4), ["global_step"] = done });
                log.WriteLine($"osprey: step {done}: eval_loss {evalLoss:F4}, eval_token_acc {evalAcc:F4}.");
                state.LastEvalLoss = evalLoss;
            }
            if (o.SaveStrategy == "steps" && (done % o.SaveSteps == 0 || done == totalSteps))
            {
                lastCheckpoint = SaveCheckpoint(model, optimizer, runDir, done, epoch, state, evaluate ? state.LastEvalLoss : null, trainingLog);
            }
        }
        lastGradNorm?.Dispose();
        if (interrupted && o.SaveStrategy == "steps" && step > startStep && (lastCheckpoint is null || RunDirectories.CheckpointStep(lastCheckpoint) != step))
        {
            lastCheckpoint = SaveCheckpoint(model, optimizer, runDir, step, (double)step / plan.StepsPerEpoch, state, null, trainingLog);
            log.WriteLine($"osprey: interrupted at step {step}; resume with --resume_from_checkpoint {lastCheckpoint}");
        }
        trainingLog.Append(new Dictionary<string, object?>
        {
            ["last_model_checkpoint"] = lastCheckpoint,
            ["best_model_checkpoint"] = state.BestCheckpoint,
            ["best_metric"] = state.BestMetric,
            ["global_step/max_steps"] = $"{step}/{totalSteps}",
            ["train_runtime"] = Math.Round(clock.Elapsed.TotalSeconds, 2),
        });
        trainingLog.WritePlots();
        return new SftResult(runDir, lastCheckpoint, state.BestCheckpoint, state.BestMetric, step, interrupted);
    }

    /// <summary>True for preference losses that compare against a reference model.</summary>
    static bool NeedsReference(string type) => type is "dpo" or "kto";

    /// <summary>
    /// The reference model of a preference run: a frozen second copy (<c>--ref_model</c>, or the base model in full
    /// training); null when none is needed or when LoRA provides it by switching its adapters off.
    /// </summary>
    CausalLM? LoadReference(PreferenceRun? preference, CausalLM policy)
    {
        if (preference is null || !NeedsReference(preference.Loss.RlhfType)) return null;
        if (_o.TrainType == "lora" && preference.ReferenceModel is null && preference.ReferenceAdapters.Count == 0) return null;
        var reference = CausalLM.Load(preference.ReferenceModel ?? _run.ModelDirectory, _run.Load);
        try
        {
            if (reference.Spec.VocabSize != policy.Spec.VocabSize)
                throw new OspreyException($"--ref_model {preference.ReferenceModel} has a vocabulary of {reference.Spec.VocabSize}, the model {policy.Spec.VocabSize}; they must share the tokenizer.");
            foreach (var adapter in preference.ReferenceAdapters) PeftAdapter.MergeInto(reference, adapter);
        }
        catch
        {
            reference.Dispose();
            throw;
        }
        reference.eval();
        var adapters = preference.ReferenceAdapters.Count == 0 ? "" : $" with adapters {string.Join(", ", preference.ReferenceAdapters)}";
        _run.Log.WriteLine($"osprey: reference model loaded from {preference.ReferenceModel ?? _run.ModelDirectory}{adapters}.");
        return reference;
    }

    /// <summary>
    /// One optimizer step's forward/backward passes of preference training: each micro-batch stacks its pairs' chosen
    /// rows over their rejected rows (one forward for both), gets reference log-probs (the frozen reference, or the
    /// same weights with adapters off), and back-propagates the preference loss weighted by its share of the step's
    /// pairs. Returns the step's loss (device tensor), its metrics and the tokens processed.
    /// </summary>
    (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) PreferenceStep(CausalLM model, CausalLM? reference, PreferenceRun preference,
        IReadOnlyList<PreferencePair> pairs, IReadOnlyList<int[]> micro, long step, long chunkRows, bool backward) =>
        ForEachMicroBatch(model, micro, (i, idx, weight) =>
        {
            var batch = BatchPlan.Collate(idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList(), 0);
            var stored = _precomputed is var (train, validation) ? (ReferenceEquals(pairs, preference.Train) ? train : validation) : null;
            var referenceLogps = stored is not null
                ? tensor(idx.Select(j => stored[j].Chosen).Concat(idx.Select(j => stored[j].Rejected)).ToArray(), device: model.Device)
                : NeedsReference(preference.Loss.RlhfType) ? ReferenceLogProbs(model, reference, batch, chunkRows) : null;
            var (loss, metrics) = ObjectiveStep(model, batch, step, i, weight, chunkRows, backward,
                (logps, counts) => PreferenceLossFor(preference.Loss, logps, counts, referenceLogps));
            return (loss, metrics, batch.Tokens);
        });

    /// <summary>
    /// Runs <paramref name="body"/> on each micro-batch (its index, its item indices, its share of the step's items) in
    /// a dispose scope of its own, and sums the weighted losses and metrics and the tokens.
    /// </summary>
    static (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) ForEachMicroBatch(CausalLM model, IReadOnlyList<int[]> micro,
        Func<int, int[], double, (Tensor Loss, Dictionary<string, double> Metrics, long Tokens)> body)
    {
        var total = micro.Sum(m => m.Length);
        var loss = zeros(1, dtype: ScalarType.Float32, device: model.Device);
        var metrics = new Dictionary<string, double>();
        long tokens = 0;
        for (int i = 0; i < micro.Count; i++)
        {
            using var scope = NewDisposeScope();
            var weight = micro[i].Length / (double)total;
            var (l, m, t) = body(i, micro[i], weight);
            loss.add_(l * weight);
            foreach (var (k, v) in m) metrics[k] = metrics.GetValueOrDefault(k) + v * weight;
            tokens += t;
        }
        return (loss, metrics, tokens);
    }

    /// <summary>
    /// The policy's forward (and, when <paramref name="backward"/>, backward) pass over <paramref name="batch"/> with a
    /// sequence-level preference loss; returns the loss value and its metrics, read while they exist.
    /// </summary>
    (Tensor Loss, Dictionary<string, double> Metrics) ObjectiveStep(CausalLM model, MicroBatch batch, long step, int micro, double weight,
        long chunkRows, bool backward, Func<Tensor, Tensor, PreferenceLossResult> objective)
    {
        var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
        var labels = tensor(batch.Labels, [batch.Rows, batch.Columns], device: model.Device);
        Dictionary<string, double>? values = null;
        using var forward = model.ForwardBackward(ids, labels, null, new TrainForwardOptions
        {
            Backward = backward,
            LossScale = weight,
            GradientCheckpointing = _o.GradientCheckpointing && backward,
            LossChunkRows = chunkRows,
            DropoutSeed = backward ? ((long)_o.Seed << 32) ^ (step * 1024 + micro) : null,
            SequenceObjective = (logps, counts) =>
            {
                var result = objective(logps, counts);
                // Read now: the metrics live in the forward pass's dispose scope.
                values = result.Metrics.ToDictionary(m => m.Key, m => m.Value.ToDouble());
                return result.Loss;
            },
        });
        return (forward.LossSum.clone(), values!);
    }

    ((float Chosen, float Rejected)[] Train, (float Chosen, float Rejected)[] Validation)? _precomputed;

    /// <summary>
    /// Reference log-probability sums of every pair, chosen and rejected (<c>--precompute_ref_log_probs</c>), computed
    /// in evaluation mode a few pairs at a time.
    /// </summary>
    (float Chosen, float Rejected)[] Precompute(CausalLM model, CausalLM? reference, IReadOnlyList<PreferencePair> pairs)
    {
        var result = new (float, float)[pairs.Count];
        var size = Math.Max(1, _o.EvalBatchSize);
        var chunkRows = Math.Max(64L, (256L << 20) / (4L * model.Spec.VocabSize));
        var wasTraining = model.training;
        model.eval();
        try
        {
            for (var start = 0; start < pairs.Count; start += size)
            {
                using var scope = NewDisposeScope();
                var idx = Enumerable.Range(start, Math.Min(size, pairs.Count - start)).ToArray();
                var batch = BatchPlan.Collate(idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList(), 0);
                var logps = ReferenceLogProbs(model, reference, batch, chunkRows).to_type(ScalarType.Float32).cpu().data<float>().ToArray();
                for (var k = 0; k < idx.Length; k++) result[idx[k]] = (logps[k], logps[idx.Length + k]);
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return result;
    }

    /// <summary>Each row's summed label log-probability under the reference: the frozen copy, or the same weights with adapters off.</summary>
    static Tensor ReferenceLogProbs(CausalLM model, CausalLM? reference, MicroBatch batch, long chunkRows)
    {
        var frozen = reference ?? model;
        if (reference is null) model.SetAdaptersEnabled(false);
        try
        {
            return PolicyLogProbs(frozen, batch, chunkRows);
        }
        finally
        {
            if (reference is null) model.SetAdaptersEnabled(true);
        }
    }

    /// <summary>
    /// Each row's summed label log-probability, without gradients. In training mode LoRA dropout is active, so its draws
    /// are seeded by <paramref name="dropoutSeed"/> (a resumed run must draw the same masks).
    /// </summary>
    static Tensor PolicyLogProbs(CausalLM model, MicroBatch batch, long chunkRows, long? dropoutSeed = null)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
        var labels = tensor(batch.Labels, [batch.Rows, batch.Columns], device: model.Device);
        using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { Backward = false, RowLogProbs = true, LossChunkRows = chunkRows, DropoutSeed = dropoutSeed });
        return r.RowLogProbs!.clone().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One optimizer step of KTO (Ethayarajh et al. 2024, as TRL's KTOTrainer computes it): each micro-batch's examples
    /// go through the policy with gradients; the KL estimate comes from mismatched rows (example i's prompt with
    /// example i+1's response) scored by the policy without gradients and by the reference.
    /// </summary>
    (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) KtoStep(CausalLM model, CausalLM? reference, PreferenceRun preference,
        IReadOnlyList<KtoExample> examples, IReadOnlyList<int[]> micro, long step, long chunkRows, bool backward) =>
        ForEachMicroBatch(model, micro, (i, idx, weight) =>
        {
            if (idx.Length < 2) throw new OspreyException("KTO needs at least two examples per micro-batch for its KL estimate; raise --per_device_train_batch_size (and --per_device_eval_batch_size) to 2 or more.");
            var batch = BatchPlan.Collate(idx.Select(j => examples[j].Sample).ToList(), 0);
            var mismatched = BatchPlan.Collate(idx.Select((j, k) => examples[j].MismatchedWith(examples[idx[(k + 1) % idx.Length]])).ToList(), 0);
            var desirable = tensor(idx.Select(j => examples[j].Desirable).ToArray(), device: model.Device);
            var referenceLogps = ReferenceLogProbs(model, reference, batch, chunkRows);
            var referenceKl = ReferenceLogProbs(model, reference, mismatched, chunkRows);
            // TRL scores the KL rows with the policy in training mode (dropout on), without gradients.
            var policyKl = PolicyLogProbs(model, mismatched, chunkRows, backward ? (((long)_o.Seed << 32) ^ (step * 1024 + i)) + 0x4B4C : null);
            var (loss, metrics) = ObjectiveStep(model, batch, step, i, weight, chunkRows, backward,
                (logps, counts) => PreferenceLosses.Kto(logps, referenceLogps, desirable, policyKl, referenceKl, preference.Loss));
            return (loss, metrics, batch.Tokens + mismatched.Tokens);
        });

    /// <summary>
    /// One optimizer step of reward-model training: each micro-batch's chosen rows over its rejected rows go through the
    /// model to the score head at each row's last token, and the pairwise loss (InstructGPT; TRL's RewardTrainer) is
    /// back-propagated, weighted by the micro-batch's share of the step's pairs.
    /// </summary>
    (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) RewardStep(CausalLM model, PreferenceRun preference,
        IReadOnlyList<PreferencePair> pairs, IReadOnlyList<int[]> micro, long step, bool backward) =>
        ForEachMicroBatch(model, micro, (i, idx, weight) =>
        {
            var samples = idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList();
            var batch = BatchPlan.Collate(samples, 0);
            var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
            var valid = new long[batch.Rows * batch.Columns];
            for (var r = 0; r < samples.Count; r++)
                for (var c = 0; c < samples[r].Length; c++) valid[r * batch.Columns + c] = 1;
            var keyValid = tensor(valid, [batch.Rows, batch.Columns], device: model.Device);
            using var grad = backward ? enable_grad() : no_grad();
            if (backward) model.SeedDropout(((long)_o.Seed << 32) ^ (step * 1024 + i));
            var scores = model.Scores(ids, keyValid).select(1, 0);
            var n = idx.Length;
            // The optional per-row margin (Llama 2's reward-model loss): rows without one count 0.
            var margin = idx.Any(j => pairs[j].Margin is not null)
                ? tensor(idx.Select(j => (float)(pairs[j].Margin ?? 0)).ToArray(), device: model.Device)
                : null;
            var result = PreferenceLosses.RewardModel(scores.narrow(0, 0, n), scores.narrow(0, n, n), margin, preference.Loss);
            if (backward) (result.Loss * weight).backward();
            return (result.Loss.detach(), result.Metrics.ToDictionary(m => m.Key, m => m.Value.ToDouble()), batch.Tokens);
        });

    /// <summary>The preference loss of a stacked batch: rows [0, n) chosen, [n, 2n) rejected.</summary>
    static Preference.PreferenceLossResult PreferenceLossFor(Preference.PreferenceLossOptions o, Tensor logps, Tensor counts, Tensor? referenceLogps)
    {
        var n = logps.shape[0] / 2;
        var chosen = logps.narrow(0, 0, n);
        var rejected = logps.narrow(0, n, n);
        var chosenCount = counts.narrow(0, 0, n).clamp_min(1);
        var rejectedCount = counts.narrow(0, n, n).clamp_min(1);
        var nll = chosen.neg() / chosenCount;
        return o.RlhfType switch
        {
            "dpo" => Preference.PreferenceLosses.Dpo(chosen, rejected, referenceLogps!.narrow(0, 0, n), referenceLogps.narrow(0, n, n), o.RpoAlpha > 0 ? nll : null, o),
            "simpo" => Preference.PreferenceLosses.SimPo(chosen / chosenCount, rejected / rejectedCount, nll, o),
            "cpo" => Preference.PreferenceLosses.Cpo(chosen, rejected, nll, o),
            "orpo" => Preference.PreferenceLosses.Orpo(chosen / chosenCount, rejected / rejectedCount, nll, o),
            _ => throw new OspreyException($"--rlhf_type {o.RlhfType} is not supported yet; use dpo, simpo, cpo or orpo."),
        };
    }

    (double Loss, Dictionary<string, double> Metrics) EvaluatePreference(CausalLM model, CausalLM? reference, PreferenceRun preference, long chunkRows)
    {
        model.eval();
        try
        {
            var count = preference.ValidationCount;
            // KTO's KL term needs at least two examples per batch.
            var size = preference.Loss.RlhfType == "kto" ? Math.Max(2, _o.EvalBatchSize) : _o.EvalBatchSize;
            var batches = Enumerable.Range(0, (count + size - 1) / size)
                .Select(b => Enumerable.Range(b * size, Math.Min(size, count - b * size)).ToArray())
                .ToList();
            using var _ = NewDisposeScope();
            var (loss, metrics, _) = preference.Loss.RlhfType switch
            {
                "kto" => KtoStep(model, reference, preference, preference.KtoValidation, batches, 0, chunkRows, backward: false),
                "rm" => RewardStep(model, preference, preference.Validation, batches, 0, backward: false),
                _ => PreferenceStep(model, reference, preference, preference.Validation, batches, 0, chunkRows, backward: false),
            };
            return (loss.ToDouble(), metrics);
        }
        finally
        {
            model.train();
        }
    }

    static Dictionary<string, double> MeanMetrics(List<Dictionary<string, double>> steps) =>
        steps.SelectMany(d => d.Keys).Distinct().ToDictionary(k => k, k => steps.Where(d => d.ContainsKey(k)).Average(d => d[k]));

    /// <summary>The trainable tensors by name: LoRA A/B (and DoRA magnitudes) plus modules_to_save, or the unfrozen base weights.</summary>
    List<(string Name, TorchSharp.Modules.Parameter Tensor)> SetUpTrainable(CausalLM model)
    {
        var list = new List<(string, TorchSharp.Modules.Parameter)>();
        if (_o.TrainType == "lora")
        {
            var adapted = model.AttachLora(_o.Lora, _o.Seed);
            _run.Log.WriteLine($"osprey: LoRA r={_o.Lora.Rank} alpha={_o.Lora.Alpha} on {adapted.Count} layers ({string.Join(", ", adapted.Select(a => a.Split('.')[^1]).Distinct())}).");
            list.AddRange(model.LoraParameters());
            foreach (var (name, p) in PeftAdapter.ModulesToSaveParameters(model, _o.Lora))
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
        foreach (var (name, p) in model.BaseParameters())
        {
            var frozen = _o.FreezeParameters.Any(f => name.StartsWith(f, StringComparison.Ordinal))
                && !_o.TrainableParameters.Any(t => name.StartsWith(t, StringComparison.Ordinal));
            if (frozen) continue;
            p.requires_grad_(true);
            list.Add((name, p));
        }
        if (list.Count == 0) throw new OspreyException("--freeze_parameters freezes every parameter; nothing is left to train.");
        return list;
    }

    void LoadWeights(CausalLM model, string checkpoint)
    {
        if (_o.TrainType == "lora")
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

    (double Loss, double Accuracy) Evaluate(CausalLM model, long chunkRows)
    {
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            var lossSum = zeros(1, dtype: ScalarType.Float64, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            long tokens = 0;
            foreach (var batch in BatchPlan.Sequential(_run.Validation, _o.EvalBatchSize))
            {
                if (batch.LabelledTokens == 0) continue;
                using var inner = NewDisposeScope();
                var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
                var labels = tensor(batch.Labels, [batch.Rows, batch.Columns], device: model.Device);
                var positions = batch.PositionIds is null ? null : tensor(batch.PositionIds, [batch.Rows, batch.Columns], device: model.Device);
                using var r = model.ForwardBackward(ids, labels, positions, new TrainForwardOptions { Backward = false, LossChunkRows = chunkRows });
                lossSum.add_(r.LossSum.to_type(ScalarType.Float64));
                correct.add_(r.Correct);
                tokens += r.Tokens;
            }
            if (tokens == 0) return (double.NaN, double.NaN);
            return (lossSum.ToDouble() / tokens, (double)correct.ToInt64() / tokens);
        }
        finally
        {
            model.train();
        }
    }

    /// <summary>The optimizer state file of a checkpoint.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    string SaveCheckpoint(CausalLM model, AdamW optimizer, string runDir, long step, double epoch, TrainerState state, double? evalLoss, TrainingLog trainingLog)
    {
        var final = Path.Combine(runDir, $"checkpoint-{step}");
        var temp = final + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        Directory.CreateDirectory(temp);
        if (_o.TrainType == "lora") PeftAdapter.Save(model, _o.Lora, temp, _run.ModelDirectory, optimizer.Master);
        else model.Save(temp, 5L << 30);
        ModelFolder.CopyTokenizerFiles(_run.ModelDirectory, temp);
        File.Copy(Path.Combine(runDir, "args.json"), Path.Combine(temp, "args.json"), overwrite: true);
        if (!_o.SaveOnlyModel)
        {
            var (tensors, meta) = optimizer.State();
            SafetensorsWriter.Write(Path.Combine(temp, OptimizerFile), tensors, meta);
            var schedule = new JsonObject
            {
                ["lr_scheduler_type"] = _o.LrSchedulerType,
                ["learning_rate"] = _o.LearningRate,
                ["next_step"] = step,
            };
            File.WriteAllText(Path.Combine(temp, "scheduler.json"), schedule.ToJsonString(Indented) + "\n");
            var rng = new JsonObject
            {
                ["seed"] = _o.Seed,
                ["scheme"] = "data order: shuffle seeded by (seed, epoch); dropout: seeded by (seed, step, micro-batch, layer)",
                ["next_step"] = step,
            };
            File.WriteAllText(Path.Combine(temp, "rng_state.json"), rng.ToJsonString(Indented) + "\n");
        }
        if (evalLoss is double loss && (state.BestMetric is null || loss < state.BestMetric))
        {
            state.BestMetric = loss;
            state.BestCheckpoint = final;
        }
        state.GlobalStep = step;
        state.Epoch = epoch;
        state.LastCheckpoint = final;
        state.Write(temp);
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(temp, final);
        trainingLog.WritePlots();
        _run.Log.WriteLine($"osprey: saved {final}");
        PruneCheckpoints(runDir, state);
        return final;
    }

    void PruneCheckpoints(string runDir, TrainerState state)
    {
        if (_o.SaveTotalLimit is not int limit) return;
        var checkpoints = Directory.EnumerateDirectories(runDir)
            .Select(d => (Dir: d, Step: RunDirectories.CheckpointStep(d)))
            .Where(c => c.Step is not null && !c.Dir.EndsWith(".tmp", StringComparison.Ordinal))
            .OrderBy(c => c.Step)
            .ToList();
        var keep = checkpoints.TakeLast(limit).Select(c => c.Dir).ToHashSet();
        if (state.BestCheckpoint is { } best) keep.Add(best);
        foreach (var (dir, _) in checkpoints)
            if (!keep.Contains(dir)) Directory.Delete(dir, true);
    }

    void WriteArgs(string runDir, long totalSteps)
    {
        var args = (JsonObject)_run.Args.DeepClone();
        args["model_dir"] = _run.ModelDirectory;
        args["output_dir"] = runDir;
        args["train_type"] = _o.TrainType;
        args["max_steps_resolved"] = totalSteps;
        var path = Path.Combine(runDir, "args.json");
        File.WriteAllText(path + ".tmp", args.ToJsonString(Indented) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    static double MemoryGiB(Device device)
    {
        if (device.type == DeviceType.CUDA)
        {
            try { return Nvml.UsedBytes(device.index < 0 ? 0 : device.index) / (double)(1L << 30); }
            catch (Exception) { return 0; }
        }
        return Environment.WorkingSet / (double)(1L << 30);
    }

    /// <summary>Losses of the steps since the last log line, kept on the device until read.</summary>
    sealed class LogWindow
    {
        readonly List<(Tensor Loss, Tensor Correct, long Tokens)> _steps = [];

        public long Tokens { get; set; }

        public double Start { get; private set; }

        public void Add(Tensor loss, Tensor correct, long tokens) => _steps.Add((loss, correct, tokens));

        /// <summary>The mean of the steps' losses (each a token mean) and the token accuracy over the window.</summary>
        public (double Loss, double Accuracy) Read()
        {
            double loss = 0, correct = 0, tokens = 0;
            var counted = 0;
            foreach (var (l, c, t) in _steps)
            {
                if (t == 0) continue;
                loss += l.ToSingle() / t;
                correct += c.ToInt64();
                tokens += t;
                counted++;
            }
            return (counted == 0 ? double.NaN : loss / counted, tokens == 0 ? double.NaN : correct / tokens);
        }

        public void Reset(double now)
        {
            foreach (var (l, c, _) in _steps) { l.Dispose(); c.Dispose(); }
            _steps.Clear();
            Tokens = 0;
            Start = now;
        }
    }
}
