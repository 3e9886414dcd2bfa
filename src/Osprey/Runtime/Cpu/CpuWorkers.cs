namespace Osprey.Runtime.Cpu;

/// <summary>
/// A fixed team of threads for the managed CPU decoder: <see cref="Run"/> splits a range over the caller and
/// <c>threads − 1</c> workers and returns when every part is done. A decode step has about five such regions per layer
/// (120 for a 24-layer model), each a few hundred microseconds, so the workers spin for a while between regions
/// instead of sleeping (a futex wake-up per region would cost more than the region's own synchronisation), and only
/// then block until the next one.
/// </summary>
internal sealed class CpuWorkers : IDisposable
{
    readonly Thread[] _threads;
    readonly SemaphoreSlim[] _wake;
    readonly int[] _sleeping;
    volatile int _generation;
    int _pending;
    volatile bool _stopped;
    Action<int, int>? _body;
    int _count, _align;
    Exception? _failure;

    /// <summary>How long an idle worker spins before it sleeps.</summary>
    const int SpinIterations = 20_000;

    /// <summary>A team of <paramref name="threads"/> (the caller counts as one).</summary>
    public CpuWorkers(int threads)
    {
        Threads = Math.Max(1, threads);
        _threads = new Thread[Threads - 1];
        _wake = new SemaphoreSlim[Threads - 1];
        _sleeping = new int[Threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0);
            var index = i;
            _threads[i] = new Thread(() => Work(index)) { IsBackground = true, Name = $"osprey-cpu-decode-{i + 1}" };
            _threads[i].Start();
        }
    }

    /// <summary>Threads, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>
    /// Runs <paramref name="body"/>(from, to) over [0, <paramref name="count"/>) in one part per thread, each part's
    /// bounds a multiple of <paramref name="align"/> (but the last); the caller takes the first part.
    /// </summary>
    public void Run(int count, int align, Action<int, int> body)
    {
        if (count <= 0) return;
        if (_threads.Length == 0 || count <= align)
        {
            body(0, count);
            return;
        }
        (_body, _count, _align, _failure) = (body, count, Math.Max(1, align), null);
        Volatile.Write(ref _pending, _threads.Length);
        _generation++;
        for (int i = 0; i < _threads.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
        Part(0);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(-1);
        _body = null;
        if (_failure is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }

    void Part(int index)
    {
        var (from, to) = Bounds(index);
        if (from < to) _body!(from, to);
    }

    (int From, int To) Bounds(int index)
    {
        var blocks = (_count + _align - 1) / _align;
        var per = blocks / Threads;
        var extra = blocks % Threads;
        var first = index * per + Math.Min(index, extra);
        var n = per + (index < extra ? 1 : 0);
        return (Math.Min(first * _align, _count), Math.Min((first + n) * _align, _count));
    }

    void Work(int i)
    {
        var seen = 0;
        while (true)
        {
            var spins = 0;
            while (_generation == seen && !_stopped)
            {
                if (++spins < SpinIterations)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // Announce the sleep, then look once more: a Run that started in between either saw the flag (and
                // releases the semaphore) or is visible here.
                Volatile.Write(ref _sleeping[i], 1);
                if (_generation != seen || _stopped)
                {
                    if (Interlocked.Exchange(ref _sleeping[i], 0) == 0) _wake[i].Wait(); // Run took the flag: take its release
                    break;
                }
                _wake[i].Wait();
                spins = 0;
            }
            if (_stopped) return;
            seen = _generation;
            try { Part(i + 1); }
            catch (Exception e) { _failure = e; }
            Interlocked.Decrement(ref _pending);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stopped = true;
        for (int i = 0; i < _threads.Length; i++)
            if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
        foreach (var t in _threads) t.Join();
        foreach (var w in _wake) w.Dispose();
    }
}
