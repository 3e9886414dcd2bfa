using Osprey.Inference;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// The engine requests behind one HTTP request (n choices, or one per prompt): all are submitted first (so a
/// refusal is answered before any output), then their updates are read as one merged sequence.
/// </summary>
internal sealed class RequestGroup : IAsyncDisposable
{
    readonly CancellationTokenSource _cancel;
    readonly List<IAsyncEnumerable<EngineUpdate>> _streams = [];
    readonly List<Task> _pumps = [];

    RequestGroup(CancellationToken aborted) => _cancel = CancellationTokenSource.CreateLinkedTokenSource(aborted);

    /// <summary>Submits every request; when one is refused the ones before it are cancelled and the refusal thrown.</summary>
    public static RequestGroup Submit(InferenceEngine engine, IReadOnlyList<EngineRequest> requests, CancellationToken aborted)
    {
        var group = new RequestGroup(aborted);
        try
        {
            foreach (var r in requests) group._streams.Add(engine.Submit(r, group._cancel.Token));
            return group;
        }
        catch
        {
            group._cancel.Cancel();
            group._cancel.Dispose();
            throw;
        }
    }

    /// <summary>Every update of every request, tagged with the request's index, in the order they are made.</summary>
    public async IAsyncEnumerable<(int Index, EngineUpdate Update)> ReadAll([EnumeratorCancellation] CancellationToken cancel = default)
    {
        var token = _cancel.Token;
        if (_streams.Count == 1)
        {
            await foreach (var u in _streams[0].WithCancellation(token).ConfigureAwait(false)) yield return (0, u);
            yield break;
        }
        var channel = Channel.CreateUnbounded<(int, EngineUpdate)>(new UnboundedChannelOptions { SingleReader = true });
        for (var i = 0; i < _streams.Count; i++)
        {
            var index = i;
            var stream = _streams[i];
            _pumps.Add(Task.Run(async () =>
            {
                await foreach (var u in stream.WithCancellation(token).ConfigureAwait(false))
                    await channel.Writer.WriteAsync((index, u), token).ConfigureAwait(false);
            }, CancellationToken.None));
        }
        _ = Task.WhenAll(_pumps).ContinueWith(t => channel.Writer.TryComplete(
            t.IsFaulted ? t.Exception!.InnerException : t.IsCanceled ? new OperationCanceledException(token) : null), TaskScheduler.Default);
        await foreach (var item in channel.Reader.ReadAllAsync(cancel).ConfigureAwait(false)) yield return item;
    }

    /// <summary>Cancels whatever still runs and waits for it to stop.</summary>
    public async ValueTask DisposeAsync()
    {
        _cancel.Cancel();
        foreach (var p in _pumps)
        {
            try { await p.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
            catch (EngineException) { }
        }
        _cancel.Dispose();
    }
}
