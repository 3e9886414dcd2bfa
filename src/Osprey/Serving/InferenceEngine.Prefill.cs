using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Serving;

// Prefill: whole short prompts batched into free rows, long ones chunked through the staging row.
public sealed partial class InferenceEngine
{
    /// <summary>Starts the chunked prefill of the next waiting request (a prompt longer than one chunk) in the staging row.</summary>
    bool StartPrefill()
    {
        if (!_pending.TryDequeue(out var state)) return false;
        _prefilling = NewSequence(state);
        return true;
    }

    /// <summary>
    /// The waiting requests that prefill together now: whole prompts, in arrival order, while free rows last and
    /// the padded batch (rows × longest prompt) stays within <paramref name="budget"/> tokens.
    /// </summary>
    List<RequestState> TakeGroup(int budget)
    {
        var group = new List<RequestState>();
        var longest = 0;
        while (_active.Count + group.Count < Options.MaxBatchSize && _pending.TryPeek(out var next))
        {
            var len = next.Request.PromptIds.Count;
            if (len > Options.PrefillChunk) break; // goes through the staging row in chunks
            if (next.Request.Images is { Count: > 0 }) break; // prefills on its own (PrefillWithImages)
            if ((group.Count + 1) * Math.Max(longest, len) > budget) break;
            group.Add(_pending.Dequeue());
            longest = Math.Max(longest, len);
        }
        return group;
    }

    /// <summary>
    /// Prefills whole prompts in one right-padded batch straight into the free rows after the running ones,
    /// gives each its first token, and makes them running; returns the padded token count.
    /// </summary>
    int PrefillGroup(List<RequestState> group)
    {
        using var scope = NewDisposeScope();
        PhaseTimer.Mark(Model.Device, "scheduler between steps (queue, cancels, prefill checks)");
        var seqs = group.Select(NewSequence).ToArray();
        var k = seqs.Length;
        var first = _active.Count;
        var width = seqs.Max(q => q.Prompt.Length);
        var ids = new long[k * width];
        for (var r = 0; r < k; r++)
        {
            var p = seqs[r].Prompt;
            for (var j = 0; j < width; j++) ids[r * width + j] = p[Math.Min(j, p.Length - 1)];
        }
        var device = Model.Device;
        using var rows = _pool.Rows(first, k);
        SelectAdapters(seqs.Select(q => q.Adapter).ToArray());
        var lastIndex = seqs.Select(q => (long)q.Prompt.Length - 1).ToArray();
        Mirror(TensorParallelStep.Prefill(ids, lastIndex, first, width));
        var logits = Model.PrefillLast(tensor(ids, [k, width], device: device), rows, tensor(lastIndex, device: device));
        for (var r = 0; r < k; r++)
        {
            var seq = seqs[r];
            seq.Prefilled = seq.Length = seq.Prompt.Length;
            if (seq.State.Request.Sampling.RepetitionPenalty != 1.0) MarkSeen(first + r, seq.Prompt);
            if (seq.State.Request.Sampling.CountsOutput) Counts()[first + r].zero_();
            _active.Add(seq);
        }
        Interlocked.Add(ref _waiting, -k);
        var picks = Pick(logits, seqs, first);
        AdvanceGrammars(seqs, picks);
        var finished = new List<int>();
        for (var r = 0; r < k; r++)
            if (Emit(seqs[r], picks[r])) finished.Add(first + r);
        for (var i = finished.Count - 1; i >= 0; i--) Remove(finished[i]);
        PhaseTimer.Mark(Model.Device, "prefill (batched prompts, first tokens)");
        return k * width;
    }

    /// <summary>
    /// Prefills a prompt with images, whole, straight into the free row after the running ones: the vision tower's
    /// features replace its placeholders and M-RoPE positions place them; the row then decodes with the others,
    /// its rotary positions shifted by the delta. Returns the prompt's token count.
    /// </summary>
    int PrefillWithImages(RequestState state)
    {
        using var scope = NewDisposeScope();
        PhaseTimer.Mark(Model.Device, "scheduler between steps (queue, cancels, prefill checks)");
        var seq = NewSequence(state);
        var row = _active.Count;
        var ids = tensor(seq.Prompt.Select(i => (long)i).ToArray(), [1, seq.Prompt.Length], device: Model.Device);
        Tensor logits;
        using (var cache = _pool.Rows(row, 1))
        {
            SelectAdapters([seq.Adapter]);
            (logits, seq.RopeDelta) = Model.PrefillWithImages(ids, state.Request.Images!, cache);
        }
        seq.Prefilled = seq.Length = seq.Prompt.Length;
        if (seq.State.Request.Sampling.RepetitionPenalty != 1.0) MarkSeen(row, seq.Prompt);
        if (seq.State.Request.Sampling.CountsOutput) Counts()[row].zero_();
        _active.Add(seq);
        Interlocked.Decrement(ref _waiting);
        var picks = Pick(logits, [seq], row);
        if (Emit(seq, picks[0])) Remove(row);
        PhaseTimer.Mark(Model.Device, "prefill (a prompt with images, first token)");
        return seq.Prompt.Length;
    }

    void MarkSeen(int row, int[] prompt)
    {
        var seen = Seen();
        seen[row].zero_();
        seen[row].index_fill_(0, tensor(prompt.Select(i => (long)i).ToArray(), device: Model.Device), true);
    }

    /// <summary>Prefills up to <paramref name="budget"/> prompt tokens of the staging request; returns how many.</summary>
    int PrefillChunk(int budget)
    {
        var seq = _prefilling!;
        var start = seq.Prefilled;
        var n = Math.Min(budget, seq.Prompt.Length - start);
        using var scope = NewDisposeScope();
        var hostIds = seq.Prompt.AsSpan(start, n).ToArray().Select(i => (long)i).ToArray();
        var ids = tensor(hostIds, [1, n], device: Model.Device);
        using var row = _pool.Row(_stagingRow, start);
        SelectAdapters([seq.Adapter]);
        Mirror(TensorParallelStep.Chunk(hostIds, _stagingRow, start));
        var logits = Model.Forward(ids, null, null, row, lastOnly: true);
        seq.Prefilled += n;
        if (seq.Prefilled < seq.Prompt.Length) return n;

        // The prompt is in the cache: the request takes the next running row and gets its first token.
        seq.Length = seq.Prompt.Length;
        if (seq.State.Request.Sampling.RepetitionPenalty != 1.0) MarkSeen(_stagingRow, seq.Prompt);
        if (seq.State.Request.Sampling.CountsOutput) Counts()[_stagingRow].zero_();
        var picks = Pick(logits.view(1, -1), [seq], _stagingRow);
        var target = _active.Count;
        Mirror(TensorParallelStep.CopyRow(_stagingRow, target, seq.Length));
        _pool.CopyRow(_stagingRow, target, seq.Length);
        _seen?[target].copy_(_seen[_stagingRow]);
        _counts?[target].copy_(_counts[_stagingRow]);
        _prefilling = null;
        _active.Add(seq);
        Interlocked.Decrement(ref _waiting);
        if (Emit(seq, picks[0])) Remove(target);
        return n;
    }
}
