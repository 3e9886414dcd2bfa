using Osprey.Runtime;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Serving;

// The decode step: one forward pass over the dense block of running rows, then a token for each.
//
// Pipelined decode (EngineOptions.AsyncDecode): a step's picked tokens stay on the device and feed the next step's
// forward pass directly, so step n + 1 is queued before the host has looked at step n's tokens; the host then copies
// step n's tokens back (asynchronously, into pinned memory), waits only for that copy, and does its bookkeeping
// (detokenizing, stop checks, streaming, row compaction) while the device runs step n + 1. A request that ends at step
// n has been given step n + 1 too: that token is dropped, and its row is compacted away after that step. The pipeline
// drains (the in-flight step's tokens are taken synchronously) before anything changes the running rows from outside:
// a new request to prefill, a cancellation, an embedding, or a row about to reach its token or length limit.
public sealed partial class InferenceEngine
{
    /// <summary>Decode steps run so far (for per-step figures of a profile).</summary>
    internal long DecodeSteps { get; private set; }

    /// <summary>Decode steps launched from the previous step's tokens on the device (pipelined; for tests and profiles).</summary>
    internal long PipelinedSteps { get; private set; }

    /// <summary>A launched step whose tokens the host has not taken yet.</summary>
    sealed class InFlightStep(Sequence[] rows, Tensor next, Tensor host, IntPtr done) : IDisposable
    {
        /// <summary>The running rows when the step was launched, in row order (<see cref="Next"/>'s order).</summary>
        public Sequence[] Rows { get; } = rows;
        /// <summary>The picked tokens, int64 [n] on the device.</summary>
        public Tensor Next { get; } = next;
        /// <summary>Their host copy (pinned on CUDA), complete once <see cref="Done"/> is.</summary>
        public Tensor Host { get; } = host;
        /// <summary>A CUDA event recorded after the copy (zero on the CPU, where the copy is already done).</summary>
        public IntPtr Done { get; } = done;

        public void Dispose()
        {
            if (Done != IntPtr.Zero) CudaDriver.DestroyEvent(Done);
            Next.Dispose();
            Host.Dispose();
        }
    }

    InFlightStep? _inflight;
    bool? _asyncDecode;

    /// <summary>Whether pipelined decode is on for this engine (the option, else OSPREY_ASYNC_DECODE=1).</summary>
    bool AsyncDecodeOn => _asyncDecode ??= (Options.AsyncDecode ?? Environment.GetEnvironmentVariable("OSPREY_ASYNC_DECODE") == "1")
        && Model.TensorParallel is null && !Model.IsVisionLanguage && !Model.HasServingAdapters
        && (Model.Device.type != TorchSharp.DeviceType.CUDA || CudaStreams.TryBind(out _));

    /// <summary>
    /// True when every running row allows a pipelined step: no logprobs (they are read on the host with the token).
    /// Rows with a grammar do: their masks need the previous token on the host, so <see cref="Launch"/> hands that token
    /// out while the device runs the forward pass, and queues the sampling after.
    /// </summary>
    bool RowsPipelinable() => _active.All(s => s.State.Request.Sampling.Logprobs is null);

    void DecodeStep()
    {
        if (_inflight is { } flight)
        {
            if (CanChain(flight))
            {
                Launch(flight);
                return;
            }
            Drain();
            if (_active.Count == 0) return;
        }
        if (AsyncDecodeOn && RowsPipelinable() && _active.All(s => s.Generated + 2 <= s.MaxTokens))
            Launch(null);
        else
            SyncStep();
    }

    /// <summary>
    /// Whether a step-by-step decode starts the next step's allowed sets after handing the tokens out instead of before
    /// (<c>OSPREY_MASKS_AFTER_EMIT=1</c>; off by default until measured). On an H100 the hand-out of 32 person-schema rows
    /// took 0.33 ms a step against 0.08 ms for free text while those sets were computed beside it (session 15); the
    /// outputs are the same either way.
    /// </summary>
    internal static bool MasksAfterEmit { get; set; } = Environment.GetEnvironmentVariable("OSPREY_MASKS_AFTER_EMIT") == "1";

    /// <summary>One step that ends with its tokens on the host and handed out (the engine's step without pipelining).</summary>
    void SyncStep()
    {
        using var scope = NewDisposeScope();
        var logits = Forward(null);
        var picks = Pick(logits, _active, 0);
        PhaseTimer.Mark(Model.Device, "sampling, tokens to the host");
        // Every grammar stepped at once; then the next step's masks start on other threads while the tokens are handed
        // out (or, with MasksAfterEmit, once they are: then they overlap only the next forward pass).
        var advanced = AdvanceGrammars(_active, picks);
        if (advanced)
        {
            PhaseTimer.Mark(Model.Device, "constraint: grammars stepped past the tokens");
            if (!MasksAfterEmit) StartNextMasks(_active);
        }
        var finished = new List<int>();
        for (var row = 0; row < _active.Count; row++)
            if (Emit(_active[row], picks[row])) finished.Add(row);
        PhaseTimer.Mark(Model.Device, "emit (detokenize, stop checks, stream writes)");
        if (advanced && MasksAfterEmit) StartNextMasks([.. _active.Where(s => !s.Ended)]);
        for (var i = finished.Count - 1; i >= 0; i--) Remove(finished[i]);
        PhaseTimer.Mark(Model.Device, "row compaction");
    }

    /// <summary>
    /// The forward pass of the running rows (a CUDA graph when one fits); their ids come from the host
    /// (<see cref="Sequence.Last"/>) or, pipelined, from <paramref name="deviceIds"/> ([n, 1] on the device). Advances
    /// every row's length; returns logits [n, vocab].
    /// </summary>
    Tensor Forward(Tensor? deviceIds)
    {
        var n = _active.Count;
        var device = Model.Device;
        PhaseTimer.Mark(device, "scheduler between steps (queue, cancels, prefill checks)");
        DecodeSteps++;
        var hostIds = deviceIds is null ? _active.Select(s => (long)s.Last).ToArray() : [];
        var hostPositions = _active.Select(s => (long)s.Length).ToArray();
        var pinned = HostUpload.PinnedDecode;
        Tensor ids() => deviceIds ?? HostUpload.Int64(hostIds, [n, 1], device, pinned);
        Tensor positions() => HostUpload.Int64(hostPositions, [n], device, pinned);
        // Rows after images (vision-language models) take rotary positions shifted by their M-RoPE delta.
        var hostRope = Model.IsVisionLanguage ? _active.Select(s => s.Length + s.RopeDelta).ToArray() : null;
        var longest = _active.Max(s => s.Length) + 1;
        // Rows of one length (always so for a request alone) attend to exactly their positions without a mask;
        // otherwise every row reads a common length, rounded up so the shapes change rarely, under a mask.
        var uniform = _active.All(s => s.Length == _active[0].Length);
        var keys = uniform ? longest : Math.Min(MaxModelLen, (longest + KeyBlock - 1) / KeyBlock * KeyBlock);
        SelectAdapters(_active.Select(s => s.Adapter).ToArray());
        // Graphs are off under tensor parallelism, so this step runs eagerly below on every rank.
        Mirror(TensorParallelStep.Decode(hostIds, hostPositions, keys, uniform));
        var logits = DecodeByGraph(hostIds, hostPositions, hostRope, n, longest, deviceIds)
            ?? Model.DecodeSlots(ids(), positions(), _pool, keys, uniform, hostRope is null ? null : HostUpload.Int64(hostRope, [n], device, pinned));
        PhaseTimer.Mark(device, "decode step on the device");
        foreach (var s in _active) s.Length++;
        return logits;
    }

    /// <summary>
    /// True when the next step may be launched from <paramref name="flight"/>'s tokens before the host takes them: the
    /// rows still allow it, every running row was in that step, and none can reach its token limit or the cache's end
    /// with the in-flight token and the next one.
    /// </summary>
    bool CanChain(InFlightStep flight)
    {
        if (!RowsPipelinable()) return false;
        foreach (var s in _active)
            if (s.Generated + 2 > s.MaxTokens || s.Length + 1 > MaxModelLen || Array.IndexOf(flight.Rows, s) < 0) return false;
        return true;
    }

    /// <summary>
    /// Launches a pipelined step: its ids are <paramref name="previous"/>'s tokens (reordered to the current rows) or,
    /// for the first step of a pipeline, the rows' last tokens from the host; its picks start copying to the host. Then
    /// hands out <paramref name="previous"/>'s tokens while the device works, and keeps the new step in flight.
    /// </summary>
    /// <remarks>
    /// With a grammar among the rows, <paramref name="previous"/>'s tokens are handed out between the forward pass and
    /// the sampling: each grammar steps past its token and the masks of this step are computed from there while the
    /// device runs the forward pass (in the step-by-step engine that host work sits between two steps, the device idle).
    /// Rows that end then still take part in this step's sampling (their token is dropped, as any ended row's) and leave
    /// the running block only once it is queued, so the sampling's rows are the forward pass's.
    /// </remarks>
    void Launch(InFlightStep? previous)
    {
        var device = Model.Device;
        InFlightStep launched;
        List<Sequence>? ended = null;
        using (var scope = NewDisposeScope())
        {
            Tensor? ids = null;
            if (previous is not null)
            {
                var order = _active.Select(s => (long)Array.IndexOf(previous.Rows, s)).ToArray();
                var identity = order.Length == previous.Rows.Length && order.Select((o, i) => o == i).All(b => b);
                ids = (identity ? previous.Next : previous.Next.index_select(0, HostUpload.Int64(order, [order.Length], device, HostUpload.PinnedDecode))).view(-1, 1);
            }
            var logits = Forward(ids);
            Sequence[] rows = [.. _active];
            if (previous is not null && rows.Any(s => s.Matcher is not null))
            {
                try { ended = HandOut(previous); }
                catch
                {
                    previous.Dispose();
                    throw;
                }
            }
            var next = PickOnDevice(logits, rows, 0, out _);
            var cuda = device.type == TorchSharp.DeviceType.CUDA;
            var host = empty(next.shape[0], dtype: ScalarType.Int64);
            if (cuda) host = host.pin_memory();
            host.copy_(next, cuda);
            var done = cuda ? CudaDriver.Record(CudaStreams.Current(Math.Max(device.index, 0))) : IntPtr.Zero;
            launched = new InFlightStep(rows, next.DetachFromDisposeScope(), host.DetachFromDisposeScope(), done);
            PipelinedSteps += previous is null ? 0 : 1;
        }
        PhaseTimer.Mark(device, "sampling (pipelined: queued, not waited on)");
        _inflight = launched;
        if (previous is null) return;
        if (ended is null) Take(previous);
        else
        {
            previous.Dispose();
            RemoveEnded(ended);
        }
    }

    /// <summary>Takes the in-flight step's tokens now (waiting for them): the pipeline is empty after.</summary>
    void Drain()
    {
        if (_inflight is not { } flight) return;
        _inflight = null;
        Take(flight);
    }

    /// <summary>
    /// Hands out <paramref name="flight"/>'s tokens once their copy is done: rows that ended at an earlier step are
    /// skipped (their token is the discarded one); rows that end now leave the running block.
    /// </summary>
    void Take(InFlightStep flight)
    {
        using (flight) RemoveEnded(HandOut(flight));
    }

    /// <summary>
    /// Waits for <paramref name="flight"/>'s tokens on the host and hands them out (grammars stepped on the cores at
    /// once, then the next masks started, as <see cref="SyncStep"/> does); rows that ended at an earlier step are skipped
    /// (their token is the discarded one). Returns the rows that end now (still running, for <see cref="RemoveEnded"/>).
    /// </summary>
    List<Sequence> HandOut(InFlightStep flight)
    {
        if (flight.Done != IntPtr.Zero) CudaDriver.Synchronize(flight.Done);
        PhaseTimer.Mark(Model.Device, "pipelined: waiting for the previous step's tokens");
        var tokens = flight.Host.data<long>().ToArray();
        var picks = tokens.Select(t => new Choice((int)t, 0f, null)).ToArray();
        if (AdvanceGrammars(flight.Rows, picks)) StartNextMasks(flight.Rows.Where(s => !s.Ended).ToArray());
        var ended = new List<Sequence>();
        for (var i = 0; i < flight.Rows.Length; i++)
        {
            var seq = flight.Rows[i];
            if (seq.Ended) continue;
            if (Emit(seq, picks[i])) ended.Add(seq);
        }
        PhaseTimer.Mark(Model.Device, "emit (detokenize, stop checks, stream writes)");
        return ended;
    }

    /// <summary>Takes rows that have ended out of the running block.</summary>
    void RemoveEnded(List<Sequence> ended)
    {
        // Rows leave in descending order, as Remove moves the last running row into the freed one.
        foreach (var row in ended.Select(s => _active.IndexOf(s)).Where(r => r >= 0).OrderByDescending(r => r)) Remove(row);
        PhaseTimer.Mark(Model.Device, "row compaction");
    }

    /// <summary>Drops a pipelined step without handing out its tokens (the engine is stopping or a step failed).</summary>
    void DiscardInFlight()
    {
        _inflight?.Dispose();
        _inflight = null;
    }

    /// <summary>Tells the model which LoRA adapter each row of the next forward passes uses (0 = base).</summary>
    void SelectAdapters(IReadOnlyList<int> perRow)
    {
        if (!Model.HasServingAdapters) return;
        Model.SetRowAdapters(perRow.All(a => a == 0) ? null : perRow);
    }
}
