using Osprey.Datasets;

namespace Osprey.Training;

/// <summary>
/// Which samples form each micro-batch of each optimizer step, as a pure function of the step number: epoch e
/// visits the samples in a shuffle seeded by (seed, e), <c>batch</c> samples per micro-batch and <c>accumulation</c>
/// micro-batches per step; the last step of an epoch takes the micro-batches that remain. A resumed run therefore
/// needs only the step number to continue with exactly the data an uninterrupted run would see.
/// </summary>
internal sealed class BatchPlan
{
    readonly IReadOnlyList<EncodedSample> _data;
    readonly int _batch, _accumulation, _seed;
    readonly long _microPerEpoch;
    int _cachedEpoch = -1;
    int[] _order = [];

    public BatchPlan(IReadOnlyList<EncodedSample> data, int batch, int accumulation, int seed)
    {
        _data = data;
        _batch = batch;
        _accumulation = accumulation;
        _seed = seed;
        _microPerEpoch = (data.Count + batch - 1) / batch;
        StepsPerEpoch = Math.Max(1, (_microPerEpoch + accumulation - 1) / accumulation);
    }

    /// <summary>Optimizer steps in one pass over the data.</summary>
    public long StepsPerEpoch { get; }

    /// <summary>The micro-batches of optimizer step <paramref name="step"/> (0-based, counted over all epochs).</summary>
    public IReadOnlyList<MicroBatch> MicroBatches(long step) =>
        MicroBatchIndices(step).Select(indices => Collate(indices.Select(i => _data[i]).ToList(), 0)).ToList();

    /// <summary>The sample indices of each micro-batch of optimizer step <paramref name="step"/> (for data kept beside the plan, e.g. preference pairs).</summary>
    public IReadOnlyList<int[]> MicroBatchIndices(long step)
    {
        var epoch = (int)(step / StepsPerEpoch);
        var within = step % StepsPerEpoch;
        var order = Order(epoch);
        var result = new List<int[]>();
        for (long m = within * _accumulation; m < Math.Min((within + 1) * _accumulation, _microPerEpoch); m++)
        {
            var start = (int)(m * _batch);
            var end = Math.Min(start + _batch, _data.Count);
            result.Add(Enumerable.Range(start, end - start).Select(i => order[i]).ToArray());
        }
        return result;
    }

    /// <summary>
    /// Whether micro-batch <paramref name="microBatch"/> of a global step belongs to <paramref name="rank"/> of
    /// <paramref name="worldSize"/>: round robin, so rank r's k-th micro-batch is the one-device run's (k·world + r)-th
    /// and every rank gets as many as the others (±1 on an epoch's short last step).
    /// </summary>
    public static bool IsOwnedBy(int microBatch, int rank, int worldSize) => microBatch % worldSize == rank;

    /// <summary>The samples in their stored order, <paramref name="batch"/> at a time (evaluation).</summary>
    public static IEnumerable<MicroBatch> Sequential(IReadOnlyList<EncodedSample> data, int batch, int padTokenId = 0)
    {
        for (var start = 0; start < data.Count; start += batch)
            yield return Collate(Enumerable.Range(start, Math.Min(batch, data.Count - start)).Select(i => data[i]).ToList(), padTokenId);
    }

    int[] Order(int epoch)
    {
        if (epoch == _cachedEpoch) return _order;
        var order = Enumerable.Range(0, _data.Count).ToArray();
        // Not HashCode.Combine: it is randomised per process, and a resumed run (a new process) must see the same order.
        var rng = new Random(unchecked(_seed * 1_000_003 + epoch * 7919 + 0x5f7d));
        // Fisher-Yates with System.Random(int), whose sequence for a given seed is fixed across .NET versions.
        for (var i = order.Length - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        _cachedEpoch = epoch;
        _order = order;
        return order;
    }

    /// <summary>
    /// The index in <paramref name="micro"/> of rank <paramref name="rank"/>'s last micro-batch with a labelled token (the
    /// backward pass after which its gradients are final for the step), or −1 when some rank has none: then no rank may
    /// start collectives during its backward passes, since every rank must issue the same ones. The same on every rank
    /// for the same global step, as the plan is.
    /// </summary>
    public static int FinalBackward(IReadOnlyList<MicroBatch> micro, int rank, int world)
    {
        var last = new int[world];
        Array.Fill(last, -1);
        for (var i = 0; i < micro.Count; i++)
            if (micro[i].LabelledTokens > 0) last[i % world] = i; // IsOwnedBy's rule
        return last.Contains(-1) ? -1 : last[rank];
    }

    /// <summary>
    /// Right-pads samples to the longest: padding carries label -100 and, when any sample has position ids (packed
    /// rows), positions 0, 1, ... of its own so it forms a separate segment.
    /// </summary>
    public static MicroBatch Collate(IReadOnlyList<EncodedSample> samples, int padTokenId)
    {
        var rows = samples.Count;
        var columns = samples.Max(s => s.Length);
        var ids = new long[rows * columns];
        var labels = new long[rows * columns];
        var packed = samples.Any(s => s.PositionIds is not null);
        var positions = packed ? new long[rows * columns] : null;
        long labelled = 0, tokens = 0;
        for (var r = 0; r < rows; r++)
        {
            var s = samples[r];
            var offset = r * columns;
            for (var c = 0; c < columns; c++)
            {
                if (c < s.Length)
                {
                    ids[offset + c] = s.InputIds[c];
                    labels[offset + c] = s.Labels[c];
                    if (positions is not null) positions[offset + c] = s.PositionIds?[c] ?? c;
                    if (c > 0 && s.Labels[c] != EncodedSample.IgnoreIndex) labelled++;
                }
                else
                {
                    ids[offset + c] = padTokenId;
                    labels[offset + c] = EncodedSample.IgnoreIndex;
                    if (positions is not null) positions[offset + c] = c - s.Length;
                }
            }
            tokens += s.Length;
        }
        // Images in row order: the model replaces placeholder tokens row-major, so this order matches them.
        var images = samples.Any(s => s.Images is not null) ? samples.SelectMany(s => s.Images ?? []).ToList() : null;
        return new MicroBatch(rows, columns, ids, labels, positions, labelled, tokens, images);
    }
}
