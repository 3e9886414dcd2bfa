using Osprey.Datasets;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Preference;

/// <summary>
/// Pieces the preference recipes share: per-micro-batch accumulation of a sequence-level objective, the policy's
/// forward/backward with that objective, reference log-probabilities (a frozen copy or the adapters switched off),
/// and the reference model itself.
/// </summary>
internal static class PreferenceSteps
{
    /// <summary>
    /// Runs <paramref name="body"/> on each micro-batch (its index, its item indices, its share of the step's items) in
    /// a dispose scope of its own, and sums the weighted losses and metrics and the tokens. With a
    /// <paramref name="shard"/> of several ranks (data-parallel training) only this rank's micro-batches run
    /// (<see cref="BatchPlan.IsOwnedBy"/>), each still weighted by its share of the whole step: the ranks' sums add up
    /// to the one-device step (<see cref="TrainingLoop.CompleteStep"/> sums the loss and metrics over ranks).
    /// </summary>
    public static (Tensor Loss, Dictionary<string, double> Metrics, long Tokens) ForEachMicroBatch(CausalLM model, IReadOnlyList<int[]> micro,
        Func<int, int[], double, (Tensor Loss, Dictionary<string, double> Metrics, long Tokens)> body, (int Rank, int World)? shard = null)
    {
        var total = micro.Sum(m => m.Length);
        var loss = zeros(1, dtype: ScalarType.Float32, device: model.Device);
        var metrics = new Dictionary<string, double>();
        long tokens = 0;
        for (int i = 0; i < micro.Count; i++)
        {
            if (shard is { } s && !BatchPlan.IsOwnedBy(i, s.Rank, s.World)) continue;
            using var scope = NewDisposeScope();
            var weight = micro[i].Length / (double)total;
            var (l, m, t) = body(i, micro[i], weight);
            loss.add_(l * weight);
            foreach (var (k, v) in m) metrics[k] = metrics.GetValueOrDefault(k) + v * weight;
            tokens += t;
        }
        return (loss, metrics, tokens);
    }

    /// <summary>The shard a training step runs on this rank: every world-th micro-batch (evaluation runs them all on every rank).</summary>
    public static (int Rank, int World) TrainingShard(TrainingSession session) => (session.Collectives.Rank, session.Collectives.WorldSize);

    /// <summary>The dropout seed of micro-batch <paramref name="micro"/> of step <paramref name="step"/> (a resumed run draws the same masks).</summary>
    public static long DropoutSeed(int seed, long step, int micro) => ((long)seed << 32) ^ (step * 1024 + micro);

    /// <summary>
    /// The policy's forward (and, when <paramref name="backward"/>, backward) pass over <paramref name="batch"/> with a
    /// sequence-level objective; returns the loss value and its metrics. The metrics are gathered into one float64
    /// tensor inside the objective (they live in the forward pass's dispose scope) and read on the host once the
    /// backward pass is queued: reading each as it was made waited for the device once per metric between the forward
    /// and the backward pass, so the backward was queued only after the device had drained.
    /// </summary>
    public static (Tensor Loss, Dictionary<string, double> Metrics) ObjectiveStep(TrainingSession session, MicroBatch batch, long step, int micro, double weight,
        bool backward, Func<Tensor, Tensor, PreferenceLossResult> objective)
    {
        var model = session.Model;
        var ids = HostUpload.Int64(batch.InputIds, [batch.Rows, batch.Columns], model.Device);
        var labels = HostUpload.Int64(batch.Labels, [batch.Rows, batch.Columns], model.Device);
        using var labelled = TrainForwardOptions.PinnedLabelledPositions(batch.Labels, batch.Rows, batch.Columns, model.Device);
        string[] names = [];
        Tensor? gathered = null;
        using var forward = model.ForwardBackward(ids, labels, null, new TrainForwardOptions
        {
            Backward = backward,
            LossScale = weight,
            GradientCheckpointing = session.Options.GradientCheckpointing && backward,
            LossChunkRows = session.ChunkRows,
            DropoutSeed = backward ? DropoutSeed(session.Options.Seed, step, micro) : null,
            Images = batch.Images,
            LabelledPositions = labelled,
            SequenceObjective = (logps, counts) =>
            {
                var result = objective(logps, counts);
                names = [.. result.Metrics.Keys];
                gathered?.Dispose();
                gathered = null;
                if (names.Length > 0)
                    using (no_grad())
                        gathered = stack(result.Metrics.Values.Select(v => v.detach().to_type(ScalarType.Float64).reshape(1)).ToArray()).DetachFromDisposeScope();
                return result.Loss;
            },
        });
        var values = new Dictionary<string, double>(names.Length);
        if (gathered is not null)
            using (gathered)
            {
                var read = gathered.cpu().data<double>().ToArray();
                for (var k = 0; k < names.Length; k++) values[names[k]] = read[k];
            }
        return (forward.LossSum.clone(), values);
    }

    /// <summary>Each row's summed label log-probability under the reference: the frozen copy, or the same weights with
    /// adapters off. A vision-language batch's images go with it, so the reference scores the rows as the policy sees them.</summary>
    public static Tensor ReferenceLogProbs(CausalLM model, CausalLM? reference, MicroBatch batch, long chunkRows)
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
    /// are seeded by <paramref name="dropoutSeed"/>.
    /// </summary>
    public static Tensor PolicyLogProbs(CausalLM model, MicroBatch batch, long chunkRows, long? dropoutSeed = null)
    {
        using var scope = NewDisposeScope();
        var ids = HostUpload.Int64(batch.InputIds, [batch.Rows, batch.Columns], model.Device);
        var labels = HostUpload.Int64(batch.Labels, [batch.Rows, batch.Columns], model.Device);
        using var labelled = TrainForwardOptions.PinnedLabelledPositions(batch.Labels, batch.Rows, batch.Columns, model.Device);
        using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions
        {
            Backward = false, RowLogProbs = true, LossChunkRows = chunkRows, DropoutSeed = dropoutSeed, Images = batch.Images, LabelledPositions = labelled,
        });
        return r.RowLogProbs!.clone().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reference model of a run: a frozen second copy (<c>--ref_model</c>, <c>--ref_adapters</c>, or the base model
    /// in full training); null when the method needs none or when LoRA provides it by switching its adapters off.
    /// </summary>
    public static CausalLM? LoadReference(TrainingSession session, PreferenceRun preference)
    {
        if (!preference.Loss.NeedsReference) return null;
        if (session.Options.TrainType == TrainType.Lora && preference.ReferenceModel is null && preference.ReferenceAdapters.Count == 0) return null;
        var run = session.Run;
        var reference = CausalLM.Load(preference.ReferenceModel ?? run.ModelDirectory, run.Load);
        try
        {
            if (reference.Spec.VocabSize != session.Model.Spec.VocabSize)
                throw new OspreyException($"--ref_model {preference.ReferenceModel} has a vocabulary of {reference.Spec.VocabSize}, the model {session.Model.Spec.VocabSize}; they must share the tokenizer.");
            foreach (var adapter in preference.ReferenceAdapters) PeftAdapter.MergeInto(reference, adapter);
        }
        catch
        {
            reference.Dispose();
            throw;
        }
        reference.eval();
        var adapters = preference.ReferenceAdapters.Count == 0 ? "" : $" with adapters {string.Join(", ", preference.ReferenceAdapters)}";
        run.Log.WriteLine($"osprey: reference model loaded from {preference.ReferenceModel ?? run.ModelDirectory}{adapters}.");
        return reference;
    }

    /// <summary>
    /// Attaches vision feature caches to the policy and <paramref name="reference"/> where their towers are frozen
    /// (<see cref="VisionFeatureCaching"/>); a reference loaded from the policy's folder, nothing merged, shares the policy's.
    /// </summary>
    public static VisionFeatureCaching CacheVisionFeatures(TrainingSession session, CausalLM? reference, PreferenceRun preference) =>
        VisionFeatureCaching.Attach(session.Model, reference, preference.ReferenceModel is null && preference.ReferenceAdapters.Count == 0, session.Run.Log);

    /// <summary>Consecutive batches of <paramref name="size"/> item indices over <paramref name="count"/> items (evaluation).</summary>
    public static List<int[]> Sequential(int count, int size) =>
        Enumerable.Range(0, (count + size - 1) / size)
            .Select(b => Enumerable.Range(b * size, Math.Min(size, count - b * size)).ToArray())
            .ToList();

    /// <summary>Runs <paramref name="evaluate"/> in evaluation mode and its own dispose scope, returning the loss and metrics.</summary>
    public static (double Loss, Dictionary<string, double> Metrics) Evaluate(CausalLM model, Func<(Tensor Loss, Dictionary<string, double> Metrics, long Tokens)> evaluate)
    {
        model.eval();
        try
        {
            using var _ = NewDisposeScope();
            var (loss, metrics, _) = evaluate();
            return (loss.ToDouble(), metrics);
        }
        finally
        {
            model.train();
        }
    }

    /// <summary>The evaluation record of a preference recipe: eval_loss, epoch, step and every metric as eval_*.</summary>
    public static void Record(TrainingLoop loop, long done, double evalLoss, Dictionary<string, double> metrics)
    {
        var record = new Dictionary<string, object?> { ["eval_loss"] = evalLoss, ["epoch"] = Math.Round(loop.Epoch(done), 4), ["global_step"] = done };
        foreach (var (k, v) in metrics) record["eval_" + k] = v;
        loop.RecordEvaluation(record, evalLoss,
            $"osprey: step {done}: eval_loss {evalLoss:F4}, eval_rewards/accuracies {metrics.GetValueOrDefault("rewards/accuracies", double.NaN):F4}.");
    }
}
