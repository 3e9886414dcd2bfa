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
    /// <remarks>
    /// The host's share is each row's allowed set (a cache lookup plus the few candidate tokens stepped through the
    /// row's own parse state; a first-seen state walks the vocabulary trie) and then one bit per token: the rows'
    /// sets, packed, go to the device in one copy (19 KB a row for a 150k vocabulary; from a pinned buffer without
    /// waiting on CUDA, so the host is not held until the step's forward pass ends) and are unpacked there. This
    /// replaced a device mask per lexical state, built as a bool per token on the host and uploaded with a wait: with
    /// the many new states of a varied schema that held the host for every new state (7.9 ms of a 32-row CPU step) and
    /// kept it from running ahead of the device.
    /// </remarks>
    Tensor Constrain(Tensor logits, IReadOnlyList<Sequence> seqs)
    {
        WaitNextMasks();
        var rows = new List<long>();
        // A row that has ended (pipelined: its token of this step is dropped) is left free.
        for (var i = 0; i < seqs.Count; i++)
            if (seqs[i].Matcher is not null && !seqs[i].Ended) rows.Add(i);
        if (rows.Count == 0) return logits;
        var vocab = (int)logits.shape[^1];
        var device = logits.device;
        var words = (vocab + 63) / 64;
        if (_maskBytes.Length < rows.Count * words * 8) _maskBytes = new byte[Math.Max(rows.Count, Options.MaxBatchSize) * words * 8];
        // Rows are independent and TokenVocabulary.Allowed is thread-safe, so a batch of them spreads over the cores
        // while the device is still busy with this step's forward pass (nothing has synchronised with it yet); each
        // row also packs its own bits into its slice of the host words.
        void Row(int j)
        {
            var seq = seqs[(int)rows[j]];
            var matcher = seq.Matcher!;
            var row = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(_maskBytes.AsSpan(j * words * 8, words * 8));
            AllowedWords(matcher.Allowed(), matcher.CanEnd, seq.State.Request.Sampling.EffectiveStopTokenIds, vocab, row);
        }
        if (rows.Count >= ParallelMaskRows) Parallel.For(0, rows.Count, Row);
        else for (var j = 0; j < rows.Count; j++) Row(j);
        PhaseTimer.Mark(device, "constraint: allowed tokens on the host");
        var refused = RefusedOnDevice(rows.Count, words, vocab, device);
        PhaseTimer.Mark(device, "constraint: masks to the device");
        Tensor result;
        // Every row constrained (a batch of structured requests): no row index to upload, one masked_fill.
        if (rows.Count == seqs.Count) result = logits.masked_fill(refused, Scalars.NegativeInfinity);
        else
        {
            var index = HostUpload.Int64([.. rows], [rows.Count], device, HostUpload.PinnedDecode);
            var constrained = logits.index_select(0, index).masked_fill(refused, Scalars.NegativeInfinity);
            result = logits.index_copy(0, index, constrained);
        }
        PhaseTimer.Mark(device, "constraint: logits masked");
        return result;
    }

    /// <summary>From this many constrained rows on, their allowed sets are computed in parallel (below it the
    /// thread hand-off costs more than the lookups it spreads), and their grammars step past the picked tokens in parallel.</summary>
    const int ParallelMaskRows = 4;

    /// <summary>
    /// Steps the grammars of <paramref name="seqs"/> past their picked tokens (<paramref name="picks"/>, by index) on
    /// the cores at once, before <see cref="Emit"/> hands the tokens out one row after another (which then skips the
    /// step): with a batch of structured requests that stepping was a serial share of every step. Below
    /// <see cref="ParallelMaskRows"/> constrained rows Emit steps them as before.
    /// </summary>
    bool AdvanceGrammars(IReadOnlyList<Sequence> seqs, IReadOnlyList<Choice> picks)
    {
        WaitNextMasks();
        var constrained = 0;
        foreach (var s in seqs)
            if (s.Matcher is not null && !s.Ended) constrained++;
        if (constrained < ParallelMaskRows) return false;
        Parallel.For(0, seqs.Count, i =>
        {
            var seq = seqs[i];
            var token = picks[i].Token;
            if (seq.Ended || seq.Matcher is not { } matcher || seq.State.Request.Sampling.EffectiveStopTokenIds.Contains(token)) return;
            matcher.Advance(token);
            seq.GrammarAdvanced = true;
        });
        return true;
    }

    /// <summary>
    /// Starts computing the next step's allowed sets of <paramref name="seqs"/>' grammars on other threads, so they
    /// overlap the handing out of this step's tokens and the next forward pass instead of starting after its launch
    /// (<see cref="Constrain"/> waits for them and finds them cached in each matcher). Only after
    /// <see cref="AdvanceGrammars"/> has stepped every grammar: nothing moves a grammar again before
    /// <see cref="WaitNextMasks"/> (which <see cref="Constrain"/>, <see cref="AdvanceGrammars"/> and <see cref="Emit"/>
    /// call first), so a mask is never computed for a state that has already moved on.
    /// </summary>
    void StartNextMasks(IReadOnlyList<Sequence> seqs)
    {
        var matchers = seqs.Select(s => s.Matcher).OfType<Inference.Constraints.GrammarMatcher>().ToArray();
        _nextMasks = Task.Run(() =>
        {
            // Only a head start: a failure here is met again, and reported, when Constrain asks for the same mask.
            try { Parallel.For(0, matchers.Length, i => matchers[i].Allowed()); }
            catch (Exception) { }
        });
    }

    /// <summary>Waits for <see cref="StartNextMasks"/>'s work, if any.</summary>
    void WaitNextMasks()
    {
        if (_nextMasks is not { } pending) return;
        _nextMasks = null;
        pending.Wait();
    }

    Task? _nextMasks;

    // The worker's buffers for the packed masks: host words (reused every step) and, on CUDA, a pinned staging copy
    // of them and the bit values 1, 2, .., 128 on the device.
    byte[] _maskBytes = [];
    Tensor? _maskStaging, _maskBitValues;

    /// <summary>How many times the bit-value table of <see cref="RefusedOnDevice"/> was made (once per device; for tests).</summary>
    internal int MaskTablesBuilt { get; private set; }

    /// <summary>
    /// One row's allowed tokens as bits (id i is bit i % 64 of word i / 64) into <paramref name="row"/>: the lexical
    /// state's bits less the ids the real state refuses, with end-of-sequence when the value may end (or when
    /// nothing else can come). A row with nothing allowed at all is left free rather than made to pick from nothing.
    /// </summary>
    internal static void AllowedWords(TokenMask mask, bool canEnd, IReadOnlyList<int> stopIds, int vocab, Span<ulong> row)
    {
        row.Clear();
        var empty = mask.IsEmpty;
        if (!empty)
        {
            var bits = mask.Bits.AsSpan(0, Math.Min(mask.Bits.Length, row.Length));
            bits.CopyTo(row);
            foreach (var id in mask.Refused) row[id >> 6] &= ~(1UL << (id & 63));
        }
        if (canEnd || empty)
            foreach (var eos in stopIds)
                if (eos >= 0 && eos < vocab) { row[eos >> 6] |= 1UL << (eos & 63); empty = false; }
        if (empty) row.Fill(ulong.MaxValue);
    }

    /// <summary>
    /// The packed rows in <see cref="_maskBytes"/> (<paramref name="words"/> words each) to a bool [rows, vocab] tensor on <paramref name="device"/>,
    /// true for the tokens refused: one copy of the bytes (pinned and not waited on, on CUDA) and an unpack there.
    /// </summary>
    Tensor RefusedOnDevice(int rows, int words, int vocab, Device device)
    {
        var cuda = device.type == TorchSharp.DeviceType.CUDA;
        if (_maskStaging is null || _maskStaging.shape[0] < rows || _maskStaging.shape[1] != words * 8L)
        {
            _maskStaging?.Dispose();
            using var plain = empty(Math.Max(rows, Options.MaxBatchSize), words * 8L, dtype: ScalarType.Byte);
            _maskStaging = (cuda ? plain.pin_memory() : plain.alias()).DetachFromDisposeScope();
        }
        // On CUDA the previous step's copy out of the staging buffer is done: its tokens were read back since. One memory
        // copy: TorchSharp's accessor CopyFrom goes element by element (measured on an H100 machine: 14 ms per step for
        // 32 rows of a 152k vocabulary, 8× the forward pass).
        unsafe
        {
            var bytes = rows * words * 8;
            fixed (byte* source = _maskBytes)
                Buffer.MemoryCopy(source, Runtime.Cpu.TensorMemory.Address(_maskStaging), _maskStaging.numel(), bytes);
        }
        var onDevice = cuda ? _maskStaging.narrow(0, 0, rows).to(device, non_blocking: true) : _maskStaging.narrow(0, 0, rows);
        // Built once per device. TorchSharp's Device has no equality of its own (two objects naming cuda:0 differ), so
        // comparing them rebuilt this table every step, and its copy from pageable memory waited for the step's
        // forward pass: 1.2-1.8 ms of every constrained step on an H100 (session 18).
        if (_maskBitValues is null || !_maskBitValues.device.Is(device))
        {
            MaskTablesBuilt++;
            _maskBitValues?.Dispose();
            _maskBitValues = BitValues(device).DetachFromDisposeScope();
        }
        return RefusedFromPacked(onDevice, _maskBitValues, vocab);
    }

    /// <summary>The byte values 1, 2, 4, .., 128 on <paramref name="device"/> (what <see cref="RefusedFromPacked"/> tests each byte against).</summary>
    internal static Tensor BitValues(Device device) => tensor(new byte[] { 1, 2, 4, 8, 16, 32, 64, 128 }, device: device);

    /// <summary>
    /// Packed allowed-token rows (uint8 [rows, bytes], the little-endian bytes of <see cref="AllowedWords"/>' words: byte
    /// k holds ids 8k .. 8k + 7, lowest bit first) to bool [rows, vocab], true for the ids whose bit is clear.
    /// TorchSharp 0.107 has no bitwise_and with a scalar, so each byte is tested against the 8 <paramref name="bitValues"/>.
    /// </summary>
    internal static Tensor RefusedFromPacked(Tensor packed, Tensor bitValues, int vocab) =>
        packed.unsqueeze(-1).bitwise_and(bitValues).eq(Scalars.Zero).view(packed.shape[0], packed.shape[1] * 8).narrow(1, 0, vocab);

    void DisposeMasks()
    {
        _maskStaging?.Dispose();
        _maskBitValues?.Dispose();
        (_maskStaging, _maskBitValues) = (null, null);
    }

    readonly record struct Choice(int Token, float Logprob, IReadOnlyList<TokenLogprob>? Top);

    /// <summary>
    /// The device half of <see cref="Pick"/>: each row's token (int64 [n], on the logits' device, in the caller's dispose
    /// scope) with its grammar's mask, its sampling settings and its own random stream, recorded in the seen-token and
    /// count tables; <paramref name="raw"/> is the float32 logits (for log-probabilities). Nothing waits for the device.
    /// </summary>
    Tensor PickOnDevice(Tensor logits, IReadOnlyList<Sequence> seqs, int firstRow, out Tensor raw)
    {
        var n = seqs.Count;
        var device = logits.device;
        raw = logits.to_type(ScalarType.Float32);
        var samplings = seqs.Select(q => q.State.Request.Sampling).ToArray();
        var seen = _seen?.narrow(0, firstRow, n);
        var counts = _counts?.narrow(0, firstRow, n);
        var next = TokenSampler.Pick(Constrain(raw, seqs), samplings, seen, counts, () =>
        {
            var u = new float[n];
            for (var i = 0; i < n; i++)
                u[i] = seqs[i].Rng is { } rng && !seqs[i].Ended ? 1f - rand(1, generator: rng).item<float>() : 0.5f;
            return tensor(u, [n, 1], device: device);
        });
        TokenSampler.Record(next, seen, counts);
        return next;
    }

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
        var next = PickOnDevice(logits, seqs, firstRow, out var raw);
        var samplings = seqs.Select(q => q.State.Request.Sampling).ToArray();
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
