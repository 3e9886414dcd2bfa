using System.Diagnostics;
using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Preference;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// Preference training on chosen/rejected pairs — DPO (against a reference), SimPO, CPO and ORPO (reference-free) —
/// top to bottom: setup (policy, reference or adapters-off base, optional precomputed reference scores) → loop (each
/// micro-batch stacks its pairs' chosen rows over their rejected rows for one forward; the loss is the pairs' mean) →
/// finish.
/// </summary>
public static class PairwisePreferenceRecipe
{
    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires.</summary>
    /// <exception cref="OspreyException">Empty data, bad options, or a reference that does not fit.</exception>
    public static TrainingResult Run(TrainingRun run, PreferenceRun data, CancellationToken cancel = default)
    {
        run.Options.Validate();
        data.Loss.Validate();
        if (data.Train.Count == 0) throw new OspreyException("the training set is empty after encoding; check --dataset and --max_length.");
        if (data.Loss.RlhfType is not (RlhfType.Dpo or RlhfType.Simpo or RlhfType.Cpo or RlhfType.Orpo))
            throw new OspreyException($"--rlhf_type {Options.OptionSet.ChoiceText(data.Loss.RlhfType)} is not a pairwise method; use dpo, simpo, cpo or orpo.");

        // Setup. The plan counts pairs (the chosen side stands for its pair).
        using var session = TrainingSession.Open(run);
        var o = run.Options;
        var model = session.Model;
        // Data parallel: the one-device step of world × accumulation micro-batches, each rank taking every world-th.
        var plan = new BatchPlan(data.Train.Select(p => p.Chosen).ToList(), o.BatchSize, o.ResolvedGradientAccumulationSteps * session.Collectives.WorldSize, o.Seed);
        var reference = PreferenceSteps.LoadReference(session, data);
        using var caching = PreferenceSteps.CacheVisionFeatures(session, reference, data);
        long referencePasses = 0;
        ReferenceScores? scores = null;
        if (data.PrecomputeReferenceLogProbs && data.Loss.RlhfType == RlhfType.Dpo)
        {
            // Every pair's reference scores now, in evaluation mode; the frozen copy is not needed afterwards.
            var clock = Stopwatch.StartNew();
            scores = new ReferenceScores(Precompute(session, reference, data.Train), Precompute(session, reference, data.Validation));
            referencePasses = reference?.VisionTowerImages ?? 0;
            reference?.Dispose();
            reference = null;
            run.Log.WriteLine($"osprey: reference log-probs of {data.Train.Count + data.Validation.Count} pairs precomputed in {clock.Elapsed.TotalSeconds:F1} s.");
        }
        using var referenceScope = reference;
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
            var (stepLoss, metrics, tokens) = Step(session, reference, data, data.Train, scores?.Train, plan.MicroBatchIndices(step), step, backward: true);
            lossSum.add_(stepLoss);
            loop.Window.Tokens += tokens;
            // The step's loss is already a mean over its pairs.
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens: 1, metrics);

            var evaluate = loop.EvaluationDue(done, data.Validation.Count);
            if (evaluate && data.Validation.Count > 0)
            {
                var batches = PreferenceSteps.Sequential(data.Validation.Count, o.EvalBatchSize);
                var (evalLoss, evalMetrics) = PreferenceSteps.Evaluate(model,
                    () => Step(session, reference, data, data.Validation, scores?.Validation, batches, 0, backward: false));
                PreferenceSteps.Record(loop, done, evalLoss, evalMetrics);
            }
            if (evaluate) loop.RunBenchmarks(done);
            loop.SaveIfDue(done, evaluate);
        }

        // Finish.
        caching.Report(model, model.VisionTowerImages + referencePasses + (reference?.VisionTowerImages ?? 0), run.Log);
        return loop.Finish(step);
    }

    /// <summary>Precomputed reference log-probabilities (chosen, rejected) per pair of each split.</summary>
    sealed record ReferenceScores((float Chosen, float Rejected)[] Train, (float Chosen, float Rejected)[] Validation);

    /// <summary>
    /// One optimizer step's forward/backward passes: each micro-batch stacks its pairs' chosen rows over their rejected
    /// rows (one forward for both), gets reference log-probs (stored, the frozen reference, or the same weights with
    /// adapters off), and back-propagates the loss weighted by its share of the step's pairs.
    /// </summary>
    static (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) Step(TrainingSession session, CausalLM? reference, PreferenceRun data,
        IReadOnlyList<PreferencePair> pairs, (float Chosen, float Rejected)[]? stored, IReadOnlyList<int[]> micro, long step, bool backward) =>
        PreferenceSteps.ForEachMicroBatch(session.Model, micro, (i, idx, weight) =>
        {
            var model = session.Model;
            var batch = BatchPlan.Collate(idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList(), 0);
            var referenceLogps = stored is not null
                ? tensor(idx.Select(j => stored[j].Chosen).Concat(idx.Select(j => stored[j].Rejected)).ToArray(), device: model.Device)
                : data.Loss.NeedsReference ? PreferenceSteps.ReferenceLogProbs(model, reference, batch, session.ChunkRows) : null;
            var (loss, metrics) = PreferenceSteps.ObjectiveStep(session, batch, step, i, weight, backward,
                (logps, counts) => Loss(data.Loss, logps, counts, referenceLogps));
            return (loss, metrics, batch.Tokens);
        }, backward ? PreferenceSteps.TrainingShard(session) : null);

    /// <summary>The loss of a stacked batch: rows [0, n) chosen, [n, 2n) rejected.</summary>
    static PreferenceLossResult Loss(PreferenceLossOptions o, Tensor logps, Tensor counts, Tensor? referenceLogps)
    {
        var n = logps.shape[0] / 2;
        var chosen = logps.narrow(0, 0, n);
        var rejected = logps.narrow(0, n, n);
        var chosenCount = counts.narrow(0, 0, n).clamp_min(1);
        var rejectedCount = counts.narrow(0, n, n).clamp_min(1);
        var nll = chosen.neg() / chosenCount;
        return o.RlhfType switch
        {
            RlhfType.Dpo => PreferenceLosses.Dpo(chosen, rejected, referenceLogps!.narrow(0, 0, n), referenceLogps.narrow(0, n, n), o.RpoAlpha > 0 ? nll : null, o),
            RlhfType.Simpo => PreferenceLosses.SimPo(chosen / chosenCount, rejected / rejectedCount, nll, o),
            RlhfType.Cpo => PreferenceLosses.Cpo(chosen, rejected, nll, o),
            _ => PreferenceLosses.Orpo(chosen / chosenCount, rejected / rejectedCount, nll, o),
        };
    }

    /// <summary>Reference log-probability sums of every pair, chosen and rejected, computed in evaluation mode a few pairs at a time.</summary>
    static (float Chosen, float Rejected)[] Precompute(TrainingSession session, CausalLM? reference, IReadOnlyList<PreferencePair> pairs)
    {
        var model = session.Model;
        var result = new (float, float)[pairs.Count];
        var size = Math.Max(1, session.Options.EvalBatchSize);
        var wasTraining = model.training;
        model.eval();
        try
        {
            for (var start = 0; start < pairs.Count; start += size)
            {
                using var scope = NewDisposeScope();
                var idx = Enumerable.Range(start, Math.Min(size, pairs.Count - start)).ToArray();
                var batch = BatchPlan.Collate(idx.Select(j => pairs[j].Chosen).Concat(idx.Select(j => pairs[j].Rejected)).ToList(), 0);
                var logps = PreferenceSteps.ReferenceLogProbs(model, reference, batch, session.ChunkRows).to_type(ScalarType.Float32).cpu().data<float>().ToArray();
                for (var k = 0; k < idx.Length; k++) result[idx[k]] = (logps[k], logps[idx.Length + k]);
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return result;
    }
}
