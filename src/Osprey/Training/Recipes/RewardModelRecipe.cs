using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Preference;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// Reward-model training (InstructGPT's pairwise loss; TRL's RewardTrainer), top to bottom: setup (the model with a
/// scalar score head, as transformers' *ForSequenceClassification) → loop (each micro-batch's chosen rows over its
/// rejected rows go to the score head at each row's last token; the pairwise loss is weighted by the micro-batch's
/// share of the step's pairs) → finish.
/// </summary>
public static class RewardModelRecipe
{
    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires.</summary>
    /// <exception cref="OspreyException">Empty data or bad options.</exception>
    public static TrainingResult Run(TrainingRun run, PreferenceRun data, CancellationToken cancel = default)
    {
        run.Options.Validate();
        data.Loss.Validate();
        if (data.Train.Count == 0) throw new OspreyException("the training set is empty after encoding; check --dataset and --max_length.");
        if (data.Loss.RlhfType != RlhfType.RewardModel) throw new OspreyException("the reward-model recipe needs --rlhf_type rm.");

        // Setup.
        using var session = TrainingSession.Open(run, scoreHead: true);
        var o = run.Options;
        var model = session.Model;
        // Data parallel: the one-device step of world × accumulation micro-batches, each rank taking every world-th.
        var plan = new BatchPlan(data.Train.Select(p => p.Chosen).ToList(), o.BatchSize, o.ResolvedGradientAccumulationSteps * session.Collectives.WorldSize, o.Seed);
        using var loop = TrainingLoop.Start(session, plan.StepsPerEpoch);

        // Loop.
        var step = loop.StartStep;
        for (; step < loop.TotalSteps; step++)
        {
            if (loop.ShouldStop(cancel)) break;
            using var stepScope = NewDisposeScope();
            PhaseTimer.Restart(model.Device);
            var lossSum = zeros(1, dtype: ScalarType.Float32, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            var (stepLoss, metrics, tokens) = Step(session, data.Loss, data.Train, plan.MicroBatchIndices(step), step, backward: true);
            lossSum.add_(stepLoss);
            loop.Window.Tokens += tokens;
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens: 1, metrics);

            var evaluate = loop.EvaluationDue(done, data.Validation.Count);
            if (evaluate && data.Validation.Count > 0)
            {
                var batches = PreferenceSteps.Sequential(data.Validation.Count, o.EvalBatchSize);
                var (evalLoss, evalMetrics) = PreferenceSteps.Evaluate(model,
                    () => Step(session, data.Loss, data.Validation, batches, 0, backward: false));
                PreferenceSteps.Record(loop, done, evalLoss, evalMetrics);
            }
            if (evaluate) loop.RunBenchmarks(done);
            loop.SaveIfDue(done, evaluate);
        }

        // Finish.
        return loop.Finish(step);
    }

    static (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) Step(TrainingSession session, PreferenceLossOptions loss,
        IReadOnlyList<PreferencePair> pairs, IReadOnlyList<int[]> micro, long step, bool backward) =>
        PreferenceSteps.ForEachMicroBatch(session.Model, micro, (i, idx, weight) =>
        {
            var model = session.Model;
            var samples = idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList();
            var batch = BatchPlan.Collate(samples, 0);
            var ids = HostUpload.Int64(batch.InputIds, [batch.Rows, batch.Columns], model.Device);
            var valid = new long[batch.Rows * batch.Columns];
            for (var r = 0; r < samples.Count; r++)
                for (var c = 0; c < samples[r].Length; c++) valid[r * batch.Columns + c] = 1;
            var keyValid = tensor(valid, [batch.Rows, batch.Columns], device: model.Device);
            using var grad = backward ? enable_grad() : no_grad();
            if (backward) model.SeedDropout(PreferenceSteps.DropoutSeed(session.Options.Seed, step, i));
            var scores = model.Scores(ids, keyValid, batch.Images).select(1, 0);
            var n = idx.Length;
            // The optional per-row margin (Llama 2's reward-model loss): rows without one count 0.
            var margin = idx.Any(j => pairs[j].Margin is not null)
                ? tensor(idx.Select(j => (float)(pairs[j].Margin ?? 0)).ToArray(), device: model.Device)
                : null;
            var result = PreferenceLosses.RewardModel(scores.narrow(0, 0, n), scores.narrow(0, n, n), margin, loss);
            if (backward) (result.Loss * weight).backward();
            return (result.Loss.detach(), result.Metrics.ToDictionary(m => m.Key, m => m.Value.ToDouble()), batch.Tokens);
        }, backward ? PreferenceSteps.TrainingShard(session) : null);
}
