using Osprey.Inference;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Serving;

/// <summary>
/// The serving engine: one worker thread owns the model and runs every request submitted from any thread.
/// Requests join and leave the running batch between decode steps (continuous batching); each holds one
/// KV-cache slot while it runs. <see cref="Submit"/> checks a request at once (throwing an
/// <see cref="EngineException"/> whose kind maps to an HTTP status) and returns its updates as they are made;
/// cancelling the token, or stopping the enumeration, ends the request and frees its slot.
/// </summary>
public sealed partial class InferenceEngine : IDisposable
{
    readonly Channel<RequestState> _queue;
    readonly Thread _worker;
    readonly CancellationTokenSource _stop = new();
    readonly Func<IReadOnlyList<int>, string> _decode;
    readonly object _submitGate = new(); // held while a batch is queued and while the worker takes the queue
    int _waiting;
    long _completed, _cancelled, _generated;
    volatile Exception? _failure; // set when the worker dies; every later request is refused with it

    /// <summary>
    /// Starts an engine over <paramref name="model"/>. <paramref name="tokenizer"/> turns output ids into text
    /// (for text deltas and stop strings); <paramref name="adapters"/> maps names to PEFT LoRA adapter folders
    /// that requests may select.
    /// </summary>
    public InferenceEngine(CausalLM model, Tokenizer tokenizer, EngineOptions? options = null, IReadOnlyDictionary<string, string>? adapters = null)
    {
        Model = model;
        Tokenizer = tokenizer;
        Options = options ?? new EngineOptions();
        if (Options.MaxBatchSize < 1) throw new OspreyException($"max_batch_size must be 1 or more, got {Options.MaxBatchSize}.");
        if (Options.MaxQueue < 0) throw new OspreyException($"the queue limit must be 0 or more, got {Options.MaxQueue}.");
        if (Options.PrefillChunk < 16) throw new OspreyException($"the prefill chunk must be at least 16 tokens, got {Options.PrefillChunk}.");
        var context = model.Spec.MaxPositionEmbeddings is int m and > 0 ? m : 8192;
        MaxModelLen = Options.MaxModelLen ?? Math.Min(context, 8192);
        if (MaxModelLen < 2) throw new OspreyException($"max_model_len must be at least 2, got {MaxModelLen}.");
        _decode = ids => tokenizer.Decode(ids, skipSpecialTokens: true);
        AdapterNames = adapters?.Keys.ToArray() ?? [];
        InitializeWorker(adapters ?? new Dictionary<string, string>());
        _queue = Channel.CreateUnbounded<RequestState>(new UnboundedChannelOptions { SingleReader = true });
        _worker = new Thread(WorkerMain) { IsBackground = true, Name = "osprey-engine" };
        _worker.Start();
        // OSPREY_GRAMMAR_PREWARM=0|1 overrides the default (on for CUDA), for measuring what the background prewarm costs.
        var prewarmSetting = Environment.GetEnvironmentVariable("OSPREY_GRAMMAR_PREWARM");
        if (Options.PrewarmStructuredOutputs ?? (prewarmSetting is "0" or "1" ? prewarmSetting == "1" : model.Device.type == TorchSharp.DeviceType.CUDA))
        {
            var stop = _stop.Token;
            new Thread(() =>
            {
                try { Inference.Constraints.TokenVocabulary.For(tokenizer).PrewarmStrings(stop); }
                catch (Exception) { /* only a head start: a request computes what it needs anyway */ }
            }) { IsBackground = true, Priority = ThreadPriority.BelowNormal, Name = "osprey-grammar-prewarm" }.Start();
        }
    }

    /// <summary>The model the engine runs.</summary>
    public CausalLM Model { get; }

    /// <summary>The tokenizer that turns output ids into text.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The limits it was started with.</summary>
    public EngineOptions Options { get; }

    /// <summary>Prompt plus output tokens per request at most.</summary>
    public int MaxModelLen { get; }

    /// <summary>Names of the LoRA adapters requests may select.</summary>
    public IReadOnlyList<string> AdapterNames { get; }

    /// <summary>Current counters.</summary>
    public EngineStats Stats => new(RunningCount, Volatile.Read(ref _waiting), SlotsInUse, Options.MaxBatchSize, MaxModelLen,
        Interlocked.Read(ref _completed), Interlocked.Read(ref _cancelled), Interlocked.Read(ref _generated));

    /// <summary>
    /// Checks and queues a request; its updates arrive through the returned sequence, the last one with
    /// <see cref="EngineUpdate.Finish"/> set. Throws an <see cref="EngineException"/> at once when the request
    /// is invalid, too long, names an unknown adapter, or the queue is full.
    /// </summary>
    public IAsyncEnumerable<EngineUpdate> Submit(EngineRequest request, CancellationToken cancel = default)
    {
        var state = Enqueue(request, cancel);
        return Read(state, cancel);
    }

    /// <summary>Runs a request to the end and returns its text and tokens.</summary>
    public Task<EngineResult> GenerateAsync(EngineRequest request, CancellationToken cancel = default) => Collect(request, Submit(request, cancel));

    /// <summary>
    /// Runs a batch of requests to the end, all queued at once: the worker sees the whole batch in one go, so the same
    /// batch is always scheduled (grouped into prefills, decoded together) the same way and, with seeded sampling,
    /// gives the same tokens every time (GRPO and PPO rollouts rely on it to resume bit-identically). Results come in
    /// request order. Throws like <see cref="Submit"/>; a batch that cannot be queued whole is not run at all.
    /// </summary>
    public async Task<IReadOnlyList<EngineResult>> GenerateAllAsync(IReadOnlyList<EngineRequest> requests, CancellationToken cancel = default)
    {
        var states = EnqueueAll(requests, cancel);
        var results = new EngineResult[requests.Count];
        try
        {
            for (var i = 0; i < requests.Count; i++) results[i] = await Collect(requests[i], Read(states[i], cancel)).ConfigureAwait(false);
        }
        catch
        {
            // One request failed or the caller gave up: the rest of the batch must not keep its rows.
            foreach (var s in states) s.Cancel();
            throw;
        }
        return results;
    }

    /// <summary>
    /// Queues a batch of requests at once, as <see cref="GenerateAllAsync"/> does (the worker sees the whole batch in one
    /// go, so it is always scheduled the same way), and returns each request's updates, in request order, as
    /// <see cref="Submit"/> does. Throws like <see cref="Submit"/>; a batch that cannot be queued whole is not run at all.
    /// </summary>
    public IReadOnlyList<IAsyncEnumerable<EngineUpdate>> SubmitAll(IReadOnlyList<EngineRequest> requests, CancellationToken cancel = default) =>
        [.. EnqueueAll(requests, cancel).Select(state => Read(state, cancel))];

    List<RequestState> EnqueueAll(IReadOnlyList<EngineRequest> requests, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var states = new List<RequestState>(requests.Count);
        lock (_submitGate)
        {
            try
            {
                foreach (var r in requests) states.Add(Enqueue(r, cancel));
            }
            catch
            {
                foreach (var s in states) s.Cancel();
                throw;
            }
        }
        return states;
    }

    static async Task<EngineResult> Collect(EngineRequest request, IAsyncEnumerable<EngineUpdate> updates)
    {
        var tokens = new List<GeneratedToken>();
        var text = new System.Text.StringBuilder();
        EngineUpdate? last = null;
        await foreach (var u in updates.ConfigureAwait(false))
        {
            text.Append(u.TextDelta);
            if (u.Token is not null) tokens.Add(u.Token);
            last = u;
        }
        return new EngineResult(text.ToString(), tokens, last?.Reason ?? Inference.FinishReason.Length, last?.StopReason, last?.PromptTokens ?? request.PromptIds.Count);
    }

    RequestState Enqueue(EngineRequest request, CancellationToken cancel)
    {
        if (_failure is not null) throw new EngineException(EngineErrorKind.Unavailable, $"the engine stopped after an error: {_failure.Message}");
        if (_stop.IsCancellationRequested) throw new EngineException(EngineErrorKind.Unavailable, "the engine is shutting down.");
        request.Sampling.Validate();
        var prompt = request.PromptIds;
        if (prompt.Count == 0) throw new EngineException(EngineErrorKind.InvalidRequest, "the prompt is empty; give at least one token.");
        var vocab = Model.Spec.VocabSize;
        foreach (var id in prompt)
            if (id < 0 || id >= vocab) throw new EngineException(EngineErrorKind.InvalidRequest, $"the prompt holds token id {id}, outside the model's vocabulary of {vocab}.");
        foreach (var token in request.Sampling.LogitBias?.Keys ?? [])
            if (token < 0 || token >= vocab) throw new EngineException(EngineErrorKind.InvalidRequest, $"logit_bias names token id {token}, outside the model's vocabulary of {vocab}.");
        if (prompt.Count >= MaxModelLen)
            throw new EngineException(EngineErrorKind.PromptTooLong, $"the prompt has {prompt.Count} tokens, but this server's max_model_len is {MaxModelLen} (prompt plus output); shorten the prompt.");
        CheckImages(request);
        if (request.Adapter is not null && !AdapterNames.Contains(request.Adapter))
            throw new EngineException(EngineErrorKind.UnknownModel, $"no adapter named '{request.Adapter}'; this engine has {(AdapterNames.Count == 0 ? "none" : string.Join(", ", AdapterNames))}.");
        if (Interlocked.Increment(ref _waiting) > Options.MaxQueue + Options.MaxBatchSize - RunningCount)
        {
            Interlocked.Decrement(ref _waiting);
            throw new EngineException(EngineErrorKind.QueueFull, $"the server is busy: {Options.MaxQueue} requests are already waiting; retry later.");
        }
        var state = new RequestState(request, _decode, cancel);
        if (!_queue.Writer.TryWrite(state))
        {
            Interlocked.Decrement(ref _waiting);
            throw new EngineException(EngineErrorKind.Unavailable, _failure is null ? "the engine is shutting down." : $"the engine stopped after an error: {_failure.Message}");
        }
        _wake.Set();
        return state;
    }

    /// <summary>
    /// Refuses images for a text model, and a prompt whose image placeholders do not match its images' token counts
    /// (checked here so the worker's prefill cannot fail on it).
    /// </summary>
    void CheckImages(EngineRequest request)
    {
        var images = request.Images ?? [];
        if (images.Count > 0 && !Model.IsVisionLanguage)
            throw new EngineException(EngineErrorKind.InvalidRequest, $"this {Model.Spec.ModelType} model takes text only; serve a vision-language model (Qwen2-VL, Qwen2.5-VL, LLaVA, LLaVA-NeXT) for images.");
        if (!Model.IsVisionLanguage) return;
        var placeholders = request.PromptIds.Count(id => id == Model.ImageTokenId);
        int needed;
        try
        {
            // The model counts its own images' tokens (Qwen2-VL: patches over merge_size²; LLaVA: feature rows).
            var input = Model.ImageInput ?? throw new OspreyException("this model was not loaded from a folder, so its image processor is unknown; load it with CausalLM.Load.");
            needed = images.Sum(input.TokenCount);
        }
        catch (OspreyException e) { throw new EngineException(EngineErrorKind.InvalidRequest, e.Message); }
        if (placeholders != needed)
            throw new EngineException(EngineErrorKind.InvalidRequest, $"the prompt holds {placeholders} image placeholder tokens but its {images.Count} image(s) need {needed}; put each image's tokens where it goes (ImagePrompt.Expand does).");
    }

    static async IAsyncEnumerable<EngineUpdate> Read(RequestState state, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        try
        {
            while (await state.Updates.Reader.WaitToReadAsync(cancel).ConfigureAwait(false))
                while (state.Updates.Reader.TryRead(out var u))
                {
                    // Updates made before the cancel may already be buffered: the caller sees none of them.
                    cancel.ThrowIfCancellationRequested();
                    yield return u;
                    if (u.Finish is not null) yield break;
                }
            if (state.Error is not null) throw state.Error;
        }
        finally
        {
            // The consumer stopped early (a client went away): end the request and free its slot.
            state.Cancel();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _queue.Writer.TryComplete();
        _wake.Set();
        _worker.Join();
        DisposeWorker();
        _stop.Dispose();
    }

    /// <summary>A queued or running request and the channel its updates go to.</summary>
    sealed class RequestState
    {
        readonly CancellationTokenRegistration _registration;
        int _cancelled;

        public RequestState(EngineRequest request, Func<IReadOnlyList<int>, string> decode, CancellationToken cancel)
        {
            Request = request;
            Text = new StopMatcher(decode, request.Sampling.Stop);
            Updates = Channel.CreateUnbounded<EngineUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
            _registration = cancel.Register(Cancel);
        }

        public EngineRequest Request { get; }
        public StopMatcher Text { get; }
        public Channel<EngineUpdate> Updates { get; }
        public Exception? Error { get; private set; }
        public bool Cancelled => Volatile.Read(ref _cancelled) != 0;
        /// <summary>Marks the request cancelled; the worker drops it (and frees its row) before its next step.</summary>
        public void Cancel() => Interlocked.Exchange(ref _cancelled, 1);

        public void Fail(Exception e)
        {
            Error = e;
            Updates.Writer.TryComplete();
            _registration.Dispose();
        }

        public void Complete()
        {
            Updates.Writer.TryComplete();
            _registration.Dispose();
        }
    }
}
