namespace Osprey.Datasets;

/// <summary>
/// ms-swift's <c>--packing</c>: encoded samples (input_ids + labels) are grouped into packs of at most
/// <c>maxLength</c> tokens by first-fit-decreasing bin packing (the greedy constant-volume packing that
/// ms-swift runs through the <c>binpacking</c> package), deterministically: samples are taken longest
/// first, ties by input order, each into the first open pack where it fits. Within a pack the samples keep
/// their input order. Pair with <see cref="Models.CausalLM.ForwardPacked"/>, whose attention is
/// block-diagonal per sample and whose RoPE uses the restarting position ids.
/// </summary>
public static class SequencePacker
{
    /// <summary>Samples ms-swift packs at a time in its streaming mode and per worker chunk.</summary>
    public const int DefaultBufferSize = 1000;

    /// <summary>
    /// Packs all <paramref name="samples"/> at once (first-fit-decreasing over the whole list). A sample
    /// longer than <paramref name="maxLength"/>, empty, or whose labels differ in length from its ids is an error.
    /// </summary>
    public static IReadOnlyList<PackedSample> Pack(IReadOnlyList<(int[] InputIds, int[] Labels)> samples, int maxLength)
    {
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "the packing length must be positive");
        for (int i = 0; i < samples.Count; i++) Validate(samples[i], i, maxLength);
        var indices = Enumerable.Range(0, samples.Count).ToArray();
        var bins = FirstFitDecreasing(indices, i => samples[i].InputIds.Length, maxLength);
        return bins.Select(b => Build(b, i => samples[i])).ToList();
    }

    /// <summary>
    /// Packs a stream with a bounded buffer, as ms-swift's iterable packing does: up to
    /// <paramref name="bufferSize"/> samples are read and packed first-fit-decreasing; every pack but the
    /// last is emitted and the last one's samples are carried into the next round (it is usually the least
    /// full); when the input ends everything is emitted. At most <paramref name="bufferSize"/> plus one pack
    /// of samples is held. <see cref="PackedSample.SampleIndices"/> are positions in the stream.
    /// </summary>
    public static IEnumerable<PackedSample> PackStreaming(IEnumerable<(int[] InputIds, int[] Labels)> samples, int maxLength, int bufferSize = DefaultBufferSize)
    {
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "the packing length must be positive");
        if (bufferSize <= 0) throw new ArgumentOutOfRangeException(nameof(bufferSize), bufferSize, "the packing buffer must hold at least one sample");
        return Iterate(samples, maxLength, bufferSize);
    }

    static IEnumerable<PackedSample> Iterate(IEnumerable<(int[] InputIds, int[] Labels)> samples, int maxLength, int bufferSize)
    {
        var held = new List<(int Index, (int[] InputIds, int[] Labels) Sample)>();
        int next = 0, fresh = 0;
        using var e = samples.GetEnumerator();
        while (true)
        {
            bool more = true;
            while (fresh < bufferSize && (more = e.MoveNext()))
            {
                Validate(e.Current, next, maxLength);
                held.Add((next++, e.Current));
                fresh++;
            }
            if (held.Count == 0) yield break;
            var byIndex = held.ToDictionary(h => h.Index, h => h.Sample);
            var bins = FirstFitDecreasing(held.Select(h => h.Index).ToArray(), i => byIndex[i].InputIds.Length, maxLength);
            int emit = more ? bins.Count - 1 : bins.Count;
            for (int b = 0; b < emit; b++) yield return Build(bins[b], i => byIndex[i]);
            held.Clear();
            fresh = 0;
            if (!more) yield break;
            foreach (var i in bins[^1]) held.Add((i, byIndex[i]));
        }
    }

    static void Validate((int[] InputIds, int[] Labels) s, int index, int maxLength)
    {
        if (s.InputIds is null || s.Labels is null) throw new ArgumentException($"sample {index} has no input_ids or labels");
        if (s.InputIds.Length == 0) throw new ArgumentException($"sample {index} is empty; packing needs at least one token per sample");
        if (s.Labels.Length != s.InputIds.Length)
            throw new ArgumentException($"sample {index} has {s.InputIds.Length} input_ids but {s.Labels.Length} labels");
        if (s.InputIds.Length > maxLength)
            throw new ArgumentException($"sample {index} has {s.InputIds.Length} tokens, more than the packing length {maxLength}; truncate it or raise max_length");
    }

    /// <summary>
    /// First-fit-decreasing: items longest first (ties by the order given), each into the lowest-numbered
    /// bin with room, found in O(log bins) with a max-segment tree over the bins' free space. Each bin's
    /// items come back in ascending item order.
    /// </summary>
    internal static List<List<int>> FirstFitDecreasing(int[] items, Func<int, int> size, int capacity)
    {
        var order = items.OrderByDescending(size).ThenBy(i => i).ToArray(); // OrderBy is stable
        int n = Math.Max(1, order.Length), leaves = 1;
        while (leaves < n) leaves <<= 1;
        var free = new int[2 * leaves];
        for (int i = 0; i < leaves; i++) free[leaves + i] = capacity; // every bin starts empty
        for (int i = leaves - 1; i >= 1; i--) free[i] = Math.Max(free[2 * i], free[2 * i + 1]);
        var bins = new List<List<int>>();
        foreach (var item in order)
        {
            var s = size(item);
            int node = 1;
            while (node < leaves) node = free[2 * node] >= s ? 2 * node : 2 * node + 1;
            var bin = node - leaves;
            if (bin == bins.Count) bins.Add([]);
            bins[bin].Add(item);
            free[node] -= s;
            for (node >>= 1; node >= 1; node >>= 1) free[node] = Math.Max(free[2 * node], free[2 * node + 1]);
        }
        foreach (var b in bins) b.Sort();
        return bins;
    }

    /// <summary>
    /// Lays packs out as a right-padded batch [rows, columns] (row-major, ready for tensors): padding has
    /// id <paramref name="padTokenId"/>, label -100 and positions 0, 1, ... of its own, so it is a segment
    /// of its own that no real token attends to.
    /// </summary>
    public static PackedBatch Collate(IReadOnlyList<PackedSample> packs, int padTokenId)
    {
        if (packs.Count == 0) throw new ArgumentException("no packs to collate", nameof(packs));
        int rows = packs.Count, cols = packs.Max(p => p.Length);
        var ids = new long[rows * cols];
        var labels = new long[rows * cols];
        var positions = new long[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            var p = packs[r];
            for (int c = 0; c < cols; c++)
            {
                var at = r * cols + c;
                if (c < p.Length) (ids[at], labels[at], positions[at]) = (p.InputIds[c], p.Labels[c], p.PositionIds[c]);
                else (ids[at], labels[at], positions[at]) = (padTokenId, -100, c - p.Length);
            }
        }
        return new PackedBatch(rows, cols, ids, labels, positions);
    }

    static PackedSample Build(List<int> members, Func<int, (int[] InputIds, int[] Labels)> get)
    {
        var total = members.Sum(i => get(i).InputIds.Length);
        var ids = new int[total];
        var labels = new int[total];
        var positions = new int[total];
        var lengths = new int[members.Count];
        int at = 0;
        for (int m = 0; m < members.Count; m++)
        {
            var (sIds, sLabels) = get(members[m]);
            sIds.CopyTo(ids, at);
            sLabels.CopyTo(labels, at);
            labels[at] = -100; // no loss across the boundary: the previous token does not predict this one
            for (int j = 0; j < sIds.Length; j++) positions[at + j] = j;
            lengths[m] = sIds.Length;
            at += sIds.Length;
        }
        return new PackedSample(ids, labels, positions, lengths, [.. members]);
    }
}
