using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Osprey.Inference;
using Osprey.Inference.Constraints;
using Osprey.Models.Blocks;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Serving;

// The scheduler. One thread owns the model and a KV cache of MaxBatchSize + 1 rows ("slots"), each MaxModelLen
// long. Running requests occupy rows 0..n-1, so a decode step works on one contiguous block of rows; a request
// that finishes or is cancelled gives its row to the last running request (its cache prefix is copied over), so
// the block stays dense. New requests are prefilled, in chunks of at most PrefillChunk tokens per iteration, in
// the extra "staging" row and copied into row n when their prompt is done. Every iteration prefills what the
// budget allows and then runs one decode step for all running requests, so requests join and leave between
// steps and running ones keep streaming while long prompts arrive.
public sealed partial class InferenceEngine
{
    readonly AutoResetEvent _wake = new(false);
    readonly List<Sequence> _active = [];
    readonly Queue<RequestState> _pending = new();
    readonly ConcurrentQueue<EmbedJob> _embeds = new();
    KvCache _pool = null!;
    int _stagingRow;
    Sequence? _prefilling;
    Tensor? _seen; // [rows, vocab] tokens seen per row, only once a request asks for a repetition penalty
    Tensor? _counts; // [rows, vocab] float32 output-token counts per row, only once a request asks for presence/frequency penalties
    readonly Dictionary<string, int> _adapterIndex = new(StringComparer.Ordinal);
    volatile int _runningCount, _slotsInUse;

    int RunningCount => _runningCount;
    int SlotsInUse => _slotsInUse;

    /// <summary>Granularity of the attended key length, so the attention shapes change every 64 steps rather than every step.</summary>
    const int KeyBlock = 64;

    void InitializeWorker(IReadOnlyDictionary<string, string> adapters)
    {
        if (Model.TensorParallel is not null && adapters.Count > 0)
            throw new OspreyException("LoRA adapters are not served with --tensor_parallel_size yet; merge the adapter (osprey export --merge_lora true) and serve the merged model, or serve on one GPU.");
        foreach (var (name, path) in adapters) _adapterIndex[name] = Model.AddServingAdapter(name, path);
        InitializeGraphs();
        _stagingRow = Options.MaxBatchSize;
        try
        {
            _pool = Model.NewCache(Options.MaxBatchSize + 1, MaxModelLen);
            Mirror(TensorParallelStep.NewCache(Options.MaxBatchSize + 1, MaxModelLen));
        }
        catch (Exception e) when (e is ExternalException or OutOfMemoryException)
        {
            var spec = Model.Spec;
            var bytes = 2L * spec.Layers.Count * spec.NumKvHeads * spec.HeadDim * (Model.DType == ScalarType.Float32 ? 4 : 2) * (Options.MaxBatchSize + 1) * MaxModelLen;
            throw new OspreyException($"the KV cache for {Options.MaxBatchSize} requests of {MaxModelLen} tokens needs {bytes / (1024.0 * 1024 * 1024):F1} GiB and does not fit; lower --max_batch_size or --max_model_len.", e);
        }
    }

    void DisposeWorker()
    {
        try
        {
            Mirror(TensorParallelStep.EndEngine());
        }
        catch (OspreyException)
        {
            // A worker is gone; the group reports it and stops it.
        }
        DisposeGraphs();
        _pool.Dispose();
        _seen?.Dispose();
        _counts?.Dispose();
        DisposeMasks();
        _wake.Dispose();
    }

    /// <summary>
    /// The mean-pooled final hidden state of <paramref name="ids"/> (what /v1/embeddings returns), computed by
    /// the worker between decode steps.
    /// </summary>
    public Task<float[]> EmbedAsync(IReadOnlyList<int> ids, CancellationToken cancel = default)
    {
        if (_failure is not null || _stop.IsCancellationRequested) throw new EngineException(EngineErrorKind.Unavailable, "the engine is not running.");
        if (ids.Count == 0) throw new EngineException(EngineErrorKind.InvalidRequest, "the input is empty; give at least one token.");
        if (ids.Count > MaxModelLen) throw new EngineException(EngineErrorKind.PromptTooLong, $"the input has {ids.Count} tokens, but this server's max_model_len is {MaxModelLen}; shorten it.");
        foreach (var id in ids)
            if (id < 0 || id >= Model.Spec.VocabSize) throw new EngineException(EngineErrorKind.InvalidRequest, $"the input holds token id {id}, outside the model's vocabulary of {Model.Spec.VocabSize}.");
        var job = new EmbedJob(ids.ToArray(), new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously), cancel);
        _embeds.Enqueue(job);
        _wake.Set();
        // The worker may have stopped between the check above and the enqueue, after failing what was queued then.
        if (_stopped) FailEmbeds(new EngineException(EngineErrorKind.Unavailable, _failure is null ? "the engine is not running." : $"the engine stopped after an error: {_failure.Message}"));
        return job.Result.Task.WaitAsync(cancel);
    }

    /// <summary>Under tensor parallelism, tells the workers the step this rank is about to run on the model or its cache.</summary>
    void Mirror(TensorParallelStep step) => Model.TensorParallel?.SendStep(step.Encode());

    sealed record EmbedJob(int[] Ids, TaskCompletionSource<float[]> Result, CancellationToken Cancel);

    void WorkerMain()
    {
        try
        {
            using var _ = no_grad();
            Loop();
        }
        catch (Exception e)
        {
            _failure = e;
        }
        // From here nothing reads the queues: later submissions are refused (TryWrite fails, EmbedAsync sees _stopped),
        // and what is in them now is failed below.
        _stopped = true;
        _queue.Writer.TryComplete();
        DiscardInFlight();
        var reason = new EngineException(EngineErrorKind.Unavailable, _failure is null ? "the engine is shutting down." : $"the engine stopped after an error: {_failure.Message}");
        foreach (var s in _active) Finish(s, reason);
        _active.Clear();
        if (_prefilling is not null) Finish(_prefilling, reason);
        _prefilling = null;
        while (_pending.TryDequeue(out var p)) p.Fail(reason);
        while (_queue.Reader.TryRead(out var left)) left.Fail(reason);
        FailEmbeds(reason);
        UpdateCounts();
    }

    /// <summary>Set once the worker has stopped reading its queues (<see cref="WorkerMain"/>).</summary>
    volatile bool _stopped;

    /// <summary>Fails every queued embedding with <paramref name="reason"/>.</summary>
    void FailEmbeds(Exception reason)
    {
        while (_embeds.TryDequeue(out var job)) job.Result.TrySetException(reason);
    }

    void Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            lock (_submitGate)
                while (_queue.Reader.TryRead(out var state)) _pending.Enqueue(state);
            DropCancelled();
            var worked = RunEmbeds();
            try
            {
                // A pipelined step in flight is taken before new rows are admitted (they join the block of running rows)
                // and once no row runs any more; cancelled rows may leave while it flies (their token in it is dropped).
                if (_inflight is not null && (_active.Count == 0 || (_active.Count < Options.MaxBatchSize && (_pending.Count > 0 || _prefilling is not null))))
                    Drain();
                var budget = Options.PrefillChunk;
                while (budget > 0 && _active.Count < Options.MaxBatchSize)
                {
                    int used;
                    if (_prefilling is not null) used = PrefillChunk(budget);
                    else if (_pending.TryPeek(out var head) && head.Request.Images is { Count: > 0 })
                    {
                        // A prompt with images prefills whole (its image features cannot be split across chunks); a
                        // long one waits for an iteration of its own rather than stall this one's decode step further.
                        if (budget < Options.PrefillChunk && head.Request.PromptIds.Count > budget) break;
                        used = PrefillWithImages(_pending.Dequeue());
                    }
                    else if (TakeGroup(budget) is { Count: > 0 } group) used = PrefillGroup(group);
                    else if (_pending.TryPeek(out var next) && next.Request.PromptIds.Count > Options.PrefillChunk && StartPrefill()) used = PrefillChunk(budget);
                    else break;
                    budget -= used;
                    worked = true;
                }
                if (_active.Count > 0)
                {
                    DecodeStep();
                    worked = true;
                }
            }
            catch (Exception e) when (e is ExternalException or InvalidOperationException or ArgumentException)
            {
                // Under tensor parallelism the workers ran (or wait in) a step this rank did not finish: out of step for good.
                if (Model.TensorParallel is not null)
                    throw new OspreyException($"a tensor-parallel step failed on rank 0 ({e.Message}); the ranks are out of step, so the engine stops.", e);
                // A step failed (out of GPU memory, say): fail the requests involved, keep serving the rest.
                var error = new EngineException(EngineErrorKind.Unavailable, $"generation failed: {e.Message}", e);
                DiscardInFlight();
                foreach (var s in _active) Finish(s, error);
                _active.Clear();
                if (_prefilling is not null) Finish(_prefilling, error);
                _prefilling = null;
            }
            UpdateCounts();
            if (!worked) _wake.WaitOne(50);
        }
    }

    void UpdateCounts()
    {
        var inFlight = _active.Count + (_prefilling is null ? 0 : 1);
        _runningCount = inFlight;
        _slotsInUse = inFlight;
    }

    bool RunEmbeds()
    {
        var any = false;
        while (_embeds.TryDequeue(out var job))
        {
            any = true;
            if (job.Cancel.IsCancellationRequested)
            {
                job.Result.TrySetCanceled(job.Cancel);
                continue;
            }
            try
            {
                using var scope = NewDisposeScope();
                var ids = tensor(job.Ids.Select(i => (long)i).ToArray(), [1, job.Ids.Length], device: Model.Device);
                SelectAdapters([0]); // embeddings come from the base model, whatever the last step's rows used
                Mirror(TensorParallelStep.Hidden([.. job.Ids.Select(i => (long)i)]));
                var mean = Model.HiddenStates(ids).to_type(ScalarType.Float32).mean([1]).squeeze(0).cpu();
                job.Result.TrySetResult(mean.data<float>().ToArray());
            }
            catch (Exception e)
            {
                // The job is this thread's once dequeued: it gets the error whatever it is (before, one the engine does
                // not recover from left it without a result, and its caller waited forever).
                job.Result.TrySetException(new EngineException(EngineErrorKind.Unavailable, $"embedding failed: {e.Message}", e));
                // Under tensor parallelism the workers ran (or wait in) the pass this rank did not finish: out of step for good.
                if (Model.TensorParallel is not null)
                    throw new OspreyException($"a tensor-parallel embedding failed on rank 0 ({e.Message}); the ranks are out of step, so the engine stops.", e);
                if (e is not (ExternalException or InvalidOperationException or ArgumentException)) throw;
            }
        }
        return any;
    }

    /// <summary>Ends queued, prefilling and running requests whose client went away; frees their rows.</summary>
    void DropCancelled()
    {
        var count = _pending.Count;
        for (var i = 0; i < count; i++)
        {
            var p = _pending.Dequeue();
            if (!p.Cancelled) { _pending.Enqueue(p); continue; }
            Interlocked.Decrement(ref _waiting);
            Interlocked.Increment(ref _cancelled);
            p.Complete();
        }
        if (_prefilling is { State.Cancelled: true })
        {
            Interlocked.Decrement(ref _waiting);
            Interlocked.Increment(ref _cancelled);
            Finish(_prefilling, null);
            _prefilling = null;
        }
        for (var row = _active.Count - 1; row >= 0; row--)
        {
            if (!_active[row].State.Cancelled) continue;
            Interlocked.Increment(ref _cancelled);
            Finish(_active[row], null);
            Remove(row);
        }
    }

    Sequence NewSequence(RequestState state)
    {
        var r = state.Request;
        var s = r.Sampling;
        return new Sequence(state, r.PromptIds.ToArray(), Math.Min(s.NewTokenLimit(r.PromptIds.Count, MaxModelLen), MaxModelLen - r.PromptIds.Count),
            r.Adapter is null ? 0 : _adapterIndex[r.Adapter],
            s.IsGreedy ? null : new torch.Generator((ulong)(s.Seed ?? Random.Shared.NextInt64()), CPU),
            s.Grammar is { } grammar ? new GrammarMatcher(grammar, TokenVocabulary.For(Tokenizer)) : null);
    }

    /// <summary>Hands the token to the request; returns true when the request is finished (its row must go).</summary>
    bool Emit(Sequence seq, Choice pick)
    {
        var state = seq.State;
        var s = state.Request.Sampling;
        seq.Generated++;
        seq.Last = pick.Token;
        Interlocked.Increment(ref _generated);
        var delta = state.Text.Add(pick.Token);
        FinishReason? finish = null;
        object? reason = null;
        var eos = s.EffectiveStopTokenIds.Contains(pick.Token);
        if (!eos && !seq.GrammarAdvanced && seq.Matcher is { } matcher)
        {
            WaitNextMasks(); // no grammar moves while the next step's masks are being computed
            matcher.Advance(pick.Token);
        }
        seq.GrammarAdvanced = false;
        if (eos) (finish, reason) = (FinishReason.Eos, pick.Token);
        // A complete value that no token can extend (no end-of-sequence id to pick, say with ignore_eos) ends here.
        else if (seq.Matcher is { CanEnd: true } done && done.Allowed().IsEmpty) finish = FinishReason.Eos;
        else if (state.Text.Stopped is not null) (finish, reason) = (FinishReason.StopString, state.Text.Stopped);
        else if (seq.Generated >= seq.MaxTokens) finish = FinishReason.Length;
        if (finish is not null) delta += state.Text.Finish();
        state.Updates.Writer.TryWrite(new EngineUpdate
        {
            TextDelta = delta,
            Token = new GeneratedToken(pick.Token, pick.Logprob, pick.Top),
            Reason = finish,
            StopReason = reason,
            PromptTokens = seq.Prompt.Length,
            CompletionTokens = seq.Generated,
        });
        if (finish is null) return false;
        Interlocked.Increment(ref _completed);
        Finish(seq, null);
        return true;
    }

    /// <summary>Ends a request: completes its stream (with <paramref name="error"/> when it failed) and frees its random stream.</summary>
    static void Finish(Sequence seq, Exception? error)
    {
        seq.Ended = true;
        seq.Rng?.Dispose();
        if (error is null) seq.State.Complete();
        else seq.State.Fail(error);
    }

    /// <summary>Frees running row <paramref name="row"/>: the last running request moves into it.</summary>
    void Remove(int row)
    {
        var last = _active.Count - 1;
        if (row != last)
        {
            var moved = _active[last];
            Mirror(TensorParallelStep.CopyRow(last, row, moved.Length));
            _pool.CopyRow(last, row, moved.Length);
            _seen?[row].copy_(_seen[last]);
            _counts?[row].copy_(_counts[last]);
            _active[row] = moved;
        }
        _active.RemoveAt(last);
    }

    /// <summary>A request while it holds a row.</summary>
    sealed class Sequence(RequestState state, int[] prompt, int maxTokens, int adapter, torch.Generator? rng, GrammarMatcher? matcher)
    {
        /// <summary>The request's constrained decoding, when it asked for a response format.</summary>
        public GrammarMatcher? Matcher { get; } = matcher;
        public RequestState State { get; } = state;
        public int[] Prompt { get; } = prompt;
        public int MaxTokens { get; } = maxTokens;
        public int Adapter { get; } = adapter;
        public torch.Generator? Rng { get; } = rng;
        public int Prefilled { get; set; }
        /// <summary>Positions of this request in the cache (its last token is not yet among them).</summary>
        public int Length { get; set; }
        /// <summary>Rotary position minus cache position of the next token: nonzero after images (M-RoPE's delta).</summary>
        public long RopeDelta { get; set; }
        public int Last { get; set; }
        public int Generated { get; set; }
        /// <summary>True once the request has ended (a pipelined step still in flight may hold a token for it, dropped).</summary>
        public bool Ended { get; set; }
        /// <summary>True when <see cref="AdvanceGrammars"/> has stepped <see cref="Matcher"/> past the token <see cref="Emit"/> is about to hand out.</summary>
        public bool GrammarAdvanced { get; set; }
    }
}
