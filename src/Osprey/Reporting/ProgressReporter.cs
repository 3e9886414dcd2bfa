using System.Diagnostics;

namespace Osprey.Reporting;

/// <summary>
/// Writes <see cref="ProgressLine"/> progress for one phase. Interactive (a terminal): the line is
/// rewritten in place with <c>'\r'</c> at most every <see cref="InteractiveInterval"/> seconds.
/// Otherwise (a log file or pipe): a full line at most every <see cref="LogInterval"/> seconds. The
/// first update and the final step (<c>step ≥ total</c>) are always written. <see cref="Finish"/>
/// writes the latest state if it was held back and ends the line.
/// </summary>
public sealed class ProgressReporter
{
    /// <summary>Minimum seconds between redraws on a terminal.</summary>
    public const double InteractiveInterval = 0.1;

    /// <summary>Minimum seconds between lines when not on a terminal.</summary>
    public const double LogInterval = 10.0;

    private readonly TextWriter _writer;
    private readonly Func<double> _now;
    private readonly double _start;
    private double _lastWrite = double.NegativeInfinity;
    private int _lastLength;
    private long _step;
    private IReadOnlyDictionary<string, string> _fields = new Dictionary<string, string>();
    private bool _pending;
    private bool _lineOpen;
    private bool _finished;

    /// <summary>A reporter timed by a monotonic clock.</summary>
    public ProgressReporter(TextWriter writer, bool interactive, string phase, long total)
        : this(writer, interactive, phase, total, MonotonicSeconds) { }

    /// <summary>A reporter with an injected clock (<paramref name="secondsNow"/>: seconds, any origin).</summary>
    public ProgressReporter(TextWriter writer, bool interactive, string phase, long total, Func<double> secondsNow)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _now = secondsNow ?? throw new ArgumentNullException(nameof(secondsNow));
        Interactive = interactive;
        Phase = phase;
        Total = total;
        _start = _now();
    }

    /// <summary>Whether the line is rewritten in place.</summary>
    public bool Interactive { get; }

    /// <summary>The phase label (e.g. <c>Train</c>).</summary>
    public string Phase { get; }

    /// <summary>Total steps (≤ 0: unknown).</summary>
    public long Total { get; }

    /// <summary>Line width passed to <see cref="ProgressLine.Format"/>.</summary>
    public int Width { get; init; } = 100;

    /// <summary>Records progress and writes it unless throttled.</summary>
    public void Update(long step, IReadOnlyDictionary<string, string> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        if (_finished) return;
        _step = step;
        _fields = fields;
        _pending = true;
        double now = _now();
        bool final = Total > 0 && step >= Total;
        double interval = Interactive ? InteractiveInterval : LogInterval;
        if (final || now - _lastWrite >= interval) Write(now);
    }

    /// <summary>Writes the latest state if it was held back and ends the line; later calls do nothing.</summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        if (_pending) Write(_now());
        if (Interactive && _lineOpen) _writer.WriteLine();
        _writer.Flush();
    }

    /// <summary>
    /// Ends a line drawn in place (a terminal) so that another message can be written below it; the next update
    /// draws the bar afresh on the line after. Writers of such messages go through <see cref="ProgressAwareWriter"/>.
    /// </summary>
    public void EndLine()
    {
        if (!Interactive || !_lineOpen) return;
        _writer.WriteLine();
        _writer.Flush();
        _lineOpen = false;
        _lastLength = 0;
    }

    private void Write(double now)
    {
        var line = ProgressLine.Format(Phase, _step, Total, now - _start, _fields, Width);
        if (Interactive)
        {
            _writer.Write('\r');
            _writer.Write(line);
            if (line.Length < _lastLength) _writer.Write(new string(' ', _lastLength - line.Length));
            _lastLength = line.Length;
            _lineOpen = true;
        }
        else
        {
            _writer.WriteLine(line);
        }
        _writer.Flush();
        _lastWrite = now;
        _pending = false;
    }

    /// <summary>True only when <paramref name="writer"/> is (or a <see cref="ProgressAwareWriter"/> around) <see cref="Console.Error"/> or <see cref="Console.Out"/> and that stream is not redirected.</summary>
    public static bool IsInteractive(TextWriter writer)
    {
        if (writer is ProgressAwareWriter aware) return IsInteractive(aware.Inner);
        if (ReferenceEquals(writer, Console.Error)) return !Console.IsErrorRedirected;
        if (ReferenceEquals(writer, Console.Out)) return !Console.IsOutputRedirected;
        return false;
    }

    private static double MonotonicSeconds() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
}
