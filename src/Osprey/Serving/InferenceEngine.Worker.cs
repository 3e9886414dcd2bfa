using System.Runtime.InteropServices;
using Osprey.Inference;

namespace Osprey.Serving;

// Interim worker: runs queued requests one at a time with TokenGenerator. Replaced by the continuous-batching
// scheduler; the public surface stays.
public sealed partial class InferenceEngine
{
    readonly AutoResetEvent _wake = new(false);
    int _running;

    int RunningCount => Volatile.Read(ref _running);
    int SlotsInUse => Volatile.Read(ref _running);

    void InitializeWorker(IReadOnlyDictionary<string, string> adapters)
    {
        if (adapters.Count > 0) throw new OspreyException("LoRA adapters are not served yet.");
    }

    void DisposeWorker() => _wake.Dispose();

    void WorkerMain()
    {
        try
        {
            Loop();
        }
        catch (Exception e)
        {
            _failure = e;
        }
        while (_queue.Reader.TryRead(out var left))
            left.Fail(new EngineException(EngineErrorKind.Unavailable, _failure is null ? "the engine is shutting down." : $"the engine stopped after an error: {_failure.Message}"));
    }

    void Loop()
    {
        var generator = new TokenGenerator(Model);
        while (!_stop.IsCancellationRequested)
        {
            if (!_queue.Reader.TryRead(out var state))
            {
                _wake.WaitOne(100);
                continue;
            }
            Interlocked.Decrement(ref _waiting);
            if (state.Cancelled)
            {
                Interlocked.Increment(ref _cancelled);
                state.Complete();
                continue;
            }
            Interlocked.Increment(ref _running);
            try
            {
                Run(generator, state);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _cancelled);
                state.Complete();
            }
            catch (Exception e) when (e is OspreyException or ExternalException or InvalidOperationException)
            {
                state.Fail(new EngineException(EngineErrorKind.Unavailable, $"generation failed: {e.Message}", e));
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }

    void Run(TokenGenerator generator, RequestState state)
    {
        var s = state.Request.Sampling;
        var prompt = state.Request.PromptIds;
        var maxNew = Math.Min(s.MaxTokens, MaxModelLen - prompt.Count);
        var options = new GenerationOptions
        {
            MaxNewTokens = maxNew,
            DoSample = !s.IsGreedy,
            Temperature = s.IsGreedy ? 1.0 : s.Temperature,
            TopK = Math.Max(0, s.TopK),
            TopP = s.TopP,
            RepetitionPenalty = s.RepetitionPenalty,
            Seed = s.Seed,
            EosTokenIds = s.IgnoreEos ? [] : s.StopTokenIds,
        };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        // A reader may cancel after the request ended and cts is disposed (Read's finally always does).
        state.OnCancel = () =>
        {
            try { cts.Cancel(); }
            catch (ObjectDisposedException) { }
        };
        if (state.Cancelled) cts.Cancel();
        string? finish = null;
        object? reason = null;
        int count = 0;
        try
        {
        generator.Generate(prompt, options, e =>
        {
            if (finish is not null) return;
            count++;
            Interlocked.Increment(ref _generated);
            var delta = state.Text.Add(e.TokenId);
            if (options.EosTokenIds.Contains(e.TokenId)) (finish, reason) = ("stop", e.TokenId);
            else if (state.Text.Stopped is not null) (finish, reason) = ("stop", state.Text.Stopped);
            if (finish is not null) cts.Cancel();
            state.Updates.Writer.TryWrite(new EngineUpdate
            {
                TextDelta = delta, Token = new GeneratedToken(e.TokenId, 0f, null), Finish = finish, StopReason = reason,
                PromptTokens = prompt.Count, CompletionTokens = count,
            });
        }, cts.Token);
        }
        catch (OperationCanceledException) when (finish is not null)
        {
            // Stopped on purpose after the final update.
        }
        if (finish is null)
            state.Updates.Writer.TryWrite(new EngineUpdate { TextDelta = state.Text.Finish(), Finish = "length", PromptTokens = prompt.Count, CompletionTokens = count });
        Interlocked.Increment(ref _completed);
        state.Complete();
    }
}
