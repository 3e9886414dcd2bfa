using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Preference;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// KTO (Ethayarajh et al. 2024, as TRL's KTOTrainer computes it) on examples labelled desirable or undesirable, top to
/// bottom: setup (policy, reference or adapters-off base) → loop (each micro-batch's examples go through the policy with
/// gradients; the KL estimate comes from mismatched rows — example i's prompt with example i+1's response — scored by
/// the policy without gradients and by the reference) → finish.
/// </summary>
public static class KtoRecipe
{
    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires.</summary>
    /// <exception cref="OspreyException">Empty data, bad options, or micro-batches of one example.</exception>
    public static TrainingResult Run(TrainingRun run, PreferenceRun data, CancellationToken cancel = default)
    {
        run.Options.Validate();
        data.Loss.Validate();
        if (data.KtoTrain.Count == 0) throw new OspreyException("the training set is empty after encoding; check --dataset and --max_length.");
        if (data.Loss.RlhfType != RlhfType.Kto) throw new OspreyException("the KTO recipe needs --rlhf_type kto.");

        // Setup.
        using var session = TrainingSession.Open(run);
        var o = run.Options;
        var model = session.Model;
        // Data parallel: the one-device step of world × accumulation micro-batches, each rank taking every world-th.
        var plan = new BatchPlan(data.KtoTrain.Select(k => k.Sample).ToList(), o.BatchSize, o.ResolvedGradientAccumulationSteps * session.Collectives.WorldSize, o.Seed);
        using var reference = PreferenceSteps.LoadReference(session, data);
        using var caching = PreferenceSteps.CacheVisionFeatures(session, reference, data);
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
            var (stepLoss, metrics, tokens) = Step(session, reference, data.Loss, data.KtoTrain, plan.MicroBatchIndices(step), step, backward: true);
            lossSum.add_(stepLoss);
            loop.Window.Tokens += tokens;
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens: 1, metrics);

            var evaluate = loop.EvaluationDue(done, data.KtoValidation.Count);
            if (evaluate && data.KtoValidation.Count > 0)
            {
                // The KL term needs at least two examples per batch.
                var batches = PreferenceSteps.Sequential(data.KtoValidation.Count, Math.Max(2, o.EvalBatchSize));
                var (evalLoss, evalMetrics) = PreferenceSteps.Evaluate(model,
                    () => Step(session, reference, data.Loss, data.KtoValidation, batches, 0, backward: false));
                PreferenceSteps.Record(loop, done, evalLoss, evalMetrics);
            }
            if (evaluate) loop.RunBenchmarks(done);
            loop.SaveIfDue(done, evaluate);
        }

        // Finish.
        caching.Report(model, model.VisionTowerImages + (reference?.VisionTowerImages ?? 0), run.Log);
        return loop.Finish(step);
    }

    static (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) Step(TrainingSession session, CausalLM? reference, PreferenceLossOptions loss,
        IReadOnlyList<KtoExample> examples, IReadOnlyList<int[]> micro, long step, bool backward) =>
        PreferenceSteps.ForEachMicroBatch(session.Model, micro, (i, idx, weight) =>
        {
            var model = session.Model;
            if (idx.Length < 2) throw new OspreyException("KTO needs at least two examples per micro-batch for its KL estimate; raise --per_device_train_batch_size (and --per_device_eval_batch_size) to 2 or more.");
            var batch = BatchPlan.Collate(idx.Select(j => examples[j].Sample).ToList(), 0);
            var mismatched = BatchPlan.Collate(idx.Select((j, k) => Mismatched(model, examples[j], examples[idx[(k + 1) % idx.Length]])).ToList(), 0);
            var desirable = tensor(idx.Select(j => examples[j].Desirable).ToArray(), device: model.Device);
            var referenceLogps = PreferenceSteps.ReferenceLogProbs(model, reference, batch, session.ChunkRows);
            var referenceKl = PreferenceSteps.ReferenceLogProbs(model, reference, mismatched, session.ChunkRows);
            // TRL scores the KL rows with the policy in training mode (dropout on), without gradients.
            var policyKl = PreferenceSteps.PolicyLogProbs(model, mismatched, session.ChunkRows,
                backward ? PreferenceSteps.DropoutSeed(session.Options.Seed, step, i) + 0x4B4C : null);
            var (value, metrics) = PreferenceSteps.ObjectiveStep(session, batch, step, i, weight, backward,
                (logps, counts) => PreferenceLosses.Kto(logps, referenceLogps, desirable, policyKl, referenceKl, loss));
            return (value, metrics, batch.Tokens + mismatched.Tokens);
        }, backward ? PreferenceSteps.TrainingShard(session) : null);

    /// <summary>
    /// <paramref name="a"/>'s prompt with <paramref name="b"/>'s response (<see cref="KtoExample.MismatchedWith"/>), with
    /// the images whose placeholder tokens it keeps: <paramref name="a"/>'s in its prompt, <paramref name="b"/>'s in its
    /// response, in order (each image's placeholders are consecutive, so counting them finds where each image sits).
    /// </summary>
    static EncodedSample Mismatched(CausalLM model, KtoExample a, KtoExample b)
    {
        var sample = a.MismatchedWith(b);
        if (a.Sample.Images is null && b.Sample.Images is null) return sample;
        var pad = model.ImageTokenId;
        var input = model.ImageInput ?? throw new InvalidOperationException("KTO rows with images need a vision-language model loaded from its folder");
        var images = new List<Osprey.Images.ProcessedImage>();
        var promptPads = a.Sample.InputIds.Take(a.PromptLength).Count(id => id == pad);
        var seen = 0;
        foreach (var image in a.Sample.Images ?? [])
        {
            if (seen + input.TokenCount(image) > promptPads) break;
            images.Add(image);
            seen += input.TokenCount(image);
        }
        var skip = b.Sample.InputIds.Take(b.PromptLength).Count(id => id == pad);
        seen = 0;
        foreach (var image in b.Sample.Images ?? [])
        {
            if (seen >= skip) images.Add(image);
            seen += input.TokenCount(image);
        }
        return sample with { Images = images.Count == 0 ? null : images };
    }
}
