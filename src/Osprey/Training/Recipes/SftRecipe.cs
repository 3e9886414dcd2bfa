using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// Supervised fine-tuning and continued pre-training (the data decides which tokens carry loss), top to bottom:
/// setup (model, adapters or trainable weights, optimizer, resume) → loop (accumulate micro-batches, clip, step, log,
/// evaluate, save) → finish.
/// </summary>
/// <remarks>
/// Numerics: the model computes in its dtype (bf16 on GPU); trainable tensors have float32 masters and float32 AdamW
/// moments (<see cref="AdamW"/>). The loss of an optimizer step is the summed token cross-entropy of all its
/// micro-batches divided by the number of labelled tokens in the whole step (not a mean of per-micro-batch means).
/// Determinism: the data order of epoch e is a shuffle seeded by (seed, e), and dropout is seeded by (seed, step,
/// micro-batch, layer), so the state needed to resume exactly is the weights, the optimizer moments and the step.
/// </remarks>
public static class SftRecipe
{
    /// <summary>Trains on <paramref name="train"/> until the last step or until <paramref name="cancel"/> fires (then a checkpoint is saved so the run can resume).</summary>
    /// <exception cref="OspreyException">Empty data, bad options, or a checkpoint that does not fit.</exception>
    public static TrainingResult Run(TrainingRun run, EncodedDataset train, EncodedDataset validation, CancellationToken cancel = default)
    {
        run.Options.Validate();
        if (train.Count == 0) throw new OspreyException("the training set is empty after encoding; check --dataset and --max_length.");

        // Setup.
        using var session = TrainingSession.Open(run);
        var o = run.Options;
        var model = session.Model;
        // Data parallel: the global step is the one-device plan with world × accumulation micro-batches, and each rank
        // takes every world-th of them (BatchPlan.IsOwnedBy), so a step sees the same samples at any world size.
        var world = session.Collectives.WorldSize;
        var rank = session.Collectives.Rank;
        var plan = new BatchPlan(train, o.BatchSize, o.ResolvedGradientAccumulationSteps * world, o.Seed);
        // A frozen vision tower and aligner: each image's features are computed once and reused in later epochs.
        using var caching = VisionFeatureCaching.Attach(model, null, false, run.Log);
        using var loop = TrainingLoop.Start(session, plan.StepsPerEpoch);

        // Loop: each step accumulates its micro-batches' token losses, scaled by the step's labelled tokens.
        var step = loop.StartStep;
        for (; step < loop.TotalSteps; step++)
        {
            if (loop.ShouldStop(cancel)) break;
            using var stepScope = NewDisposeScope();
            PhaseTimer.Restart(model.Device);
            var micro = plan.MicroBatches(step);
            var stepTokens = micro.Sum(m => m.LabelledTokens);
            var lossSum = zeros(1, dtype: ScalarType.Float32, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            var finalBackward = BatchPlan.FinalBackward(micro, rank, world);
            for (int i = 0; i < micro.Count; i++)
            {
                if (!BatchPlan.IsOwnedBy(i, rank, world)) continue;
                var batch = micro[i];
                if (batch.LabelledTokens == 0) continue;
                using var ids = HostUpload.Int64(batch.InputIds, [batch.Rows, batch.Columns], model.Device);
                using var labels = HostUpload.Int64(batch.Labels, [batch.Rows, batch.Columns], model.Device);
                using var positions = batch.PositionIds is null ? null : HostUpload.Int64(batch.PositionIds, [batch.Rows, batch.Columns], model.Device);
                // With pinned uploads the labelled positions come from the host too, so nothing waits for the device.
                using var labelled = TrainForwardOptions.PinnedLabelledPositions(batch.Labels, batch.Rows, batch.Columns, model.Device);
                using var result = model.ForwardBackward(ids, labels, positions, new TrainForwardOptions
                {
                    LossScale = 1.0 / stepTokens,
                    GradientCheckpointing = o.GradientCheckpointing,
                    LossChunkRows = session.ChunkRows,
                    DropoutSeed = ((long)o.Seed << 32) ^ (step * 1024 + i),
                    Residency = session.Optimizer.TrainingHook(i == finalBackward),
                    Images = batch.Images,
                    LabelledPositions = labelled,
                });
                lossSum.add_(result.LossSum);
                correct.add_(result.Correct);
                loop.Window.Tokens += batch.Tokens;
            }
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens, metrics: null);

            var evaluate = loop.EvaluationDue(done, validation.Count);
            if (evaluate && validation.Count > 0)
            {
                var (evalLoss, evalAcc) = Evaluate(session, validation);
                loop.RecordEvaluation(
                    new() { ["eval_loss"] = evalLoss, ["eval_token_acc"] = evalAcc, ["epoch"] = Math.Round(loop.Epoch(done), 4), ["global_step"] = done },
                    evalLoss, $"osprey: step {done}: eval_loss {evalLoss:F4}, eval_token_acc {evalAcc:F4}.");
            }
            if (evaluate) loop.RunBenchmarks(done);
            loop.SaveIfDue(done, evaluate);
        }

        // Finish.
        caching.Report(model, model.VisionTowerImages, run.Log);
        return loop.Finish(step);
    }


    /// <summary>Mean token loss and accuracy over the validation set, in evaluation mode.</summary>
    static (double Loss, double Accuracy) Evaluate(TrainingSession session, EncodedDataset validation)
    {
        var model = session.Model;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            var lossSum = zeros(1, dtype: ScalarType.Float64, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            long tokens = 0;
            foreach (var batch in BatchPlan.Sequential(validation, session.Options.EvalBatchSize))
            {
                if (batch.LabelledTokens == 0) continue;
                using var inner = NewDisposeScope();
                var ids = tensor(batch.InputIds, [batch.Rows, batch.Columns], device: model.Device);
                var labels = tensor(batch.Labels, [batch.Rows, batch.Columns], device: model.Device);
                var positions = batch.PositionIds is null ? null : tensor(batch.PositionIds, [batch.Rows, batch.Columns], device: model.Device);
                using var r = model.ForwardBackward(ids, labels, positions, new TrainForwardOptions { Backward = false, LossChunkRows = session.ChunkRows, Residency = session.Optimizer.Residency, Images = batch.Images });
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
}
