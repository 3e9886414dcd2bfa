using System.Diagnostics;
using System.Globalization;
using Osprey.Hub.Download;
using Osprey.Reporting;

namespace Osprey.Hub;

/// <summary>
/// Shows <see cref="HubDownloadProgress"/> as a <see cref="ProgressReporter"/> line:
/// <c>Download:  45%|████▌     | 45/100 MB [00:12&lt;00:15, 3.2 MB/s]</c>. The steps are bytes, so the reporter's
/// percentage, bar and ETA follow the bytes; the size and the rate are shown as bare fields. Thread-safe: the
/// hub clients report from their worker threads.
/// </summary>
public sealed class DownloadProgressReporter
{
    private readonly Lock _gate = new();
    private readonly TextWriter _writer;
    private readonly bool _interactive;
    private readonly Func<double> _now;
    private readonly string _phase;
    private ProgressReporter? _reporter;
    private double _start;
    private long _startBytes;
    private long _bytes;
    private long? _total;

    /// <summary>A reporter writing to <paramref name="writer"/> (a terminal when <paramref name="interactive"/>), timed by <paramref name="secondsNow"/> (null: a monotonic clock).</summary>
    public DownloadProgressReporter(TextWriter writer, bool interactive, string phase = "Download", Func<double>? secondsNow = null)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _interactive = interactive;
        _phase = phase;
        _now = secondsNow ?? (() => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency);
    }

    /// <summary>Bytes done so far (of all selected files).</summary>
    public long Bytes { get { lock (_gate) return _bytes; } }

    /// <summary>The total size of the selected files, when the hub reported every size.</summary>
    public long? Total { get { lock (_gate) return _total; } }

    /// <summary>Records one progress report; pass this method as <see cref="HubDownloadOptions.Progress"/>.</summary>
    public void Report(HubDownloadProgress progress)
    {
        lock (_gate)
        {
            if (_reporter is null)
            {
                _start = _now();
                _startBytes = progress.Bytes;
                _reporter = new ProgressReporter(_writer, _interactive, _phase, progress.Total ?? 0, _now);
            }
            // Reports from parallel workers can arrive out of order; the count only grows.
            _bytes = Math.Max(_bytes, progress.Bytes);
            _total = progress.Total;
            _reporter.Update(_bytes, Fields(_bytes, _total, _bytes - _startBytes, _now() - _start));
        }
    }

    /// <summary>Writes the final state and ends the line (nothing when no progress was reported).</summary>
    public void Finish()
    {
        lock (_gate) _reporter?.Finish();
    }

    /// <summary>The line's fields: <c>12.3/45.6 MB</c> and <c>3.2 MB/s</c> (bare values).</summary>
    public static IReadOnlyDictionary<string, string> Fields(long bytes, long? total, long transferred, double seconds)
    {
        var size = total is { } t ? $"{Mb(bytes)}/{Mb(t)} MB" : $"{Mb(bytes)} MB";
        var rate = seconds > 0 ? Mb((long)(transferred / seconds)) + " MB/s" : "? MB/s";
        return new Dictionary<string, string> { ["_size"] = size, ["_rate"] = rate };
    }

    /// <summary>A human-readable size: <c>512 B</c>, <c>1.5 KB</c>, <c>12.3 MB</c>, <c>4.20 GB</c> (powers of 1000, as the hubs show).</summary>
    public static string FormatSize(long bytes) => bytes switch
    {
        < 1000 => bytes.ToString(CultureInfo.InvariantCulture) + " B",
        < 1_000_000 => (bytes / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " KB",
        < 1_000_000_000 => (bytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " MB",
        _ => (bytes / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " GB",
    };

    private static string Mb(long bytes) => (bytes / 1e6).ToString(bytes < 10_000_000 ? "0.00" : "0.0", CultureInfo.InvariantCulture);
}
