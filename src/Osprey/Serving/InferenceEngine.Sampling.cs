using Osprey.Runtime;
using Osprey.Inference;
using Osprey.Inference.Constraints;
using static TorchSharp.torch;

namespace Osprey.Serving;

// Token choice: each row's token picked with its request's own settings, and the per-row penalty tables.
public sealed partial class InferenceEngine
{
    Tensor Counts() => _counts ??= zeros(Options.MaxBatchSize + 1, Model.Spec.VocabSize, dtype: ScalarType.Float32, device: Model.Device).DetachFromDisposeScope();

    Tensor Seen() => _seen ??= zeros(Options.MaxBatchSize + 1, Model.Spec.VocabSize, dtype: ScalarType.Bool, device: Model.Device).DetachFromDisposeScope();

    /// <summary>
    /// The logits with every token a row's grammar refuses set to -inf, for the rows that have one (the others are
    /// untouched, and with no such row nothing is done). End-of-sequence is allowed only once the value is
    /// complete. A row whose grammar allows nothing (the tokenizer cannot write what comes next) may only end.
    /// </summary>
    Tensor Constrain(Tensor logits, IReadOnlyList<Sequence> seqs)
    {
        var rows = new List<long>();
        for (var i = 0; i < seqs.Count; i++)
            if (seqs[i].Matcher is not null) rows.Add(i);
        if (rows.Count == 0) return logits;
        var vocab = (int)logits.shape[^1];
        var device = logits.device;
        var masks = new Tensor[rows.Count];
        if (_masks.Count + rows.Count > MaxCachedMasks) DisposeMasks(); // before the loop: never free a mask this step uses
        // The host's share of a constrained step is each row's allowed set (a cache lookup plus the few candidate
        // tokens stepped through the row's own parse state; a first-seen state walks the vocabulary trie). Rows are
        // independent and TokenVocabulary.Allowed is thread-safe, so a batch of them spreads over the cores while
        // the GPU is still busy with this step's forward pass (nothing has synchronised with it yet).
        if (rows.Count >= ParallelMaskRows)
            Parallel.For(0, rows.Count, j => seqs[(int)rows[j]].Matcher!.Allowed());
        List<long>? extra = null; // flat [row * vocab + id] of the candidate tokens the rows' real states refuse
        for (var j = 0; j < rows.Count; j++)
        {
            var seq = seqs[(int)rows[j]];
            var matcher = seq.Matcher!;
            var allowed = matcher.Allowed(); // computed above for a large batch (GrammarMatcher keeps it per step)
            if (allowed.IsEmpty) allowed = TokenMask.None;
            var key = (allowed.Bits, matcher.CanEnd, seq.State.Request.Sampling.EffectiveStopTokenIds);
            if (!_masks.TryGetValue(key, out var mask))
            {
                mask = _masks[key] = MaskTensor(allowed.Bits, matcher.CanEnd, key.EffectiveStopTokenIds, vocab, device);
            }
            masks[j] = mask;
            foreach (var id in allowed.Refused)
                if (id < vocab) (extra ??= []).Add((long)j * vocab + id);
        }
        var refused = stack(masks);
        // The few ids a lexical state's mask lets through but the row's whole parse stack refuses: one small upload.
        if (extra is not null) refused.view(-1).index_fill_(0, tensor(extra.ToArray(), device: device), true);
        // Every row constrained (a batch of structured requests): no row index to upload, one masked_fill.
        if (rows.Count == seqs.Count) return logits.masked_fill(refused, Scalars.NegativeInfinity);
        var index = tensor(rows.ToArray(), device: device);
        var constrained = logits.index_select(0, index).masked_fill(refused, Scalars.NegativeInfinity);
        return logits.index_copy(0, index, constrained);
    }

    /// <summary>Device masks kept per (allowed tokens, may end, stop ids): the per-step work is then a lookup and a stack.</summary>
    const int MaxCachedMasks = 256;

    /// <summary>From this many constrained rows on, their allowed sets are computed in parallel (below it the
    /// thread hand-off costs more than the lookups it spreads).</summary>
    const int ParallelMaskRows = 4;

    // Keyed by the allowed-token array as the vocabulary caches it (one array per grammar state, so reference
    // equality is a state's identity) and by the stop ids' contents: requests each carry their own list of the
    // same ids, and a key per list would upload the same mask once per request and churn the cache in a big batch.
    readonly Dictionary<(ulong[], bool, IReadOnlyList<int>), Tensor> _masks = new(MaskKeyComparer.Instance);

    sealed class MaskKeyComparer : IEqualityComparer<(ulong[] Bits, bool CanEnd, IReadOnlyList<int> Stops)>
    {
        public static readonly MaskKeyComparer Instance = new();

        public bool Equals((ulong[] Bits, bool CanEnd, IReadOnlyList<int> Stops) x, (ulong[] Bits, bool CanEnd, IReadOnlyList<int> Stops) y) =>
            ReferenceEquals(x.Bits, y.Bits) && x.CanEnd == y.CanEnd && (ReferenceEquals(x.Stops, y.Stops) || x.Stops.SequenceEqual(y.Stops));

        public int GetHashCode((ulong[] Bits, bool CanEnd, IReadOnlyList<int> Stops) k)
        {
            var h = new HashCode();
            h.Add(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(k.Bits));
            h.Add(k.CanEnd);
            foreach (var id in k.Stops) h.Add(id);
            return h.ToHashCode();
        }
    }

    void DisposeMasks()
    {
        foreach (var m in _masks.Values) m.Dispose();
        _masks.Clear();
    }

    /// <summary>
    /// A bool [vocab] mask on the device, true for the tokens refused: all but the allowed tokens and, when the value
    /// may end (or when nothing else can come), end-of-sequence. Kept negated so a step needs no logical_not.
    /// </summary>
    static Tensor MaskTensor(ulong[] bits, bool canEnd, IReadOnlyList<int> stopIds, int vocab, Device device)
    {
        var row = new bool[vocab];
        var any = false;
        var limit = Math.Min(vocab, bits.Length * 64);
        for (var w = 0; w < bits.Length; w++)
        {
            var word = bits[w];
            while (word != 0)
            {
                var id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
                word &= word - 1;
                if (id < limit) { row[id] = true; any = true; }
            }
        }
        if (canEnd || !any)
            foreach (var eos in stopIds)
                if (eos >= 0 && eos < vocab) { row[eos] = true; any = true; }
        if (!any) Array.Fill(row, true); // nothing at all can follow: leave the row free rather than pick from nothing
        for (var i = 0; i < row.Length; i++) row[i] = !row[i];
        return tensor(row, device: device).DetachFromDisposeScope();
    }

    readonly record struct Choice(int Token, float Logprob, IReadOnlyList<TokenLogprob>? Top);

    /// <summary>
    /// Picks each row's next token from logits [n, vocab] with that request's own settings through the shared
    /// <see cref="TokenSampler"/>, each sampled row drawing from its request's own seeded stream. Log-probabilities
    /// are those of the model's distribution before any processing (vLLM's default). <paramref name="firstRow"/> is
    /// the cache row of the first sequence (for the seen-token and count tables).
    /// </summary>
    Choice[] Pick(Tensor logits, IReadOnlyList<Sequence> seqs, int firstRow)
    {
        using var scope = NewDisposeScope();
        var n = seqs.Count;
        var device = logits.device;
        var raw = logits.to_type(ScalarType.Float32);
        var samplings = seqs.Select(q => q.State.Request.Sampling).ToArray();
        var seen = _seen?.narrow(0, firstRow, n);
        var counts = _counts?.narrow(0, firstRow, n);
        var next = TokenSampler.Pick(Constrain(raw, seqs), samplings, seen, counts, () =>
        {
            var u = new float[n];
            for (var i = 0; i < n; i++)
                u[i] = seqs[i].Rng is { } rng ? 1f - rand(1, generator: rng).item<float>() : 0.5f;
            return tensor(u, [n, 1], device: device);
        });
        TokenSampler.Record(next, seen, counts);
        var tokens = next.cpu().data<long>().ToArray();
        var picks = new Choice[n];
        var wantTop = samplings.Max(s => s.Logprobs ?? -1);
        if (wantTop < 0)
        {
            for (var i = 0; i < n; i++) picks[i] = new Choice((int)tokens[i], 0f, null);
            return picks;
        }
        var logp = raw.log_softmax(-1);
        var chosen = logp.gather(1, next.unsqueeze(1)).squeeze(1).cpu().data<float>().ToArray();
        float[]? topValues = null;
        long[]? topIds = null;
        if (wantTop > 0)
        {
            var (values, indices) = logp.topk(wantTop, -1, true, true);
            topValues = values.cpu().data<float>().ToArray();
            topIds = indices.cpu().data<long>().ToArray();
        }
        for (var i = 0; i < n; i++)
        {
            var k = samplings[i].Logprobs;
            IReadOnlyList<TokenLogprob>? top = null;
            if (k > 0) top = Enumerable.Range(0, k.Value).Select(j => new TokenLogprob((int)topIds![i * wantTop + j], topValues![i * wantTop + j])).ToArray();
            else if (k == 0) top = [];
            picks[i] = new Choice((int)tokens[i], k is null ? 0f : chosen[i], top);
        }
        return picks;
    }
}
