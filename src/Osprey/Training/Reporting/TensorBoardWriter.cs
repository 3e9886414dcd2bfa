using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Tensorboard;

namespace Osprey.Training.Reporting;

/// <summary>
/// Writes a TensorBoard event file (<c>events.out.tfevents.&lt;unix seconds&gt;.&lt;hostname&gt;</c>) in a log
/// folder: TFRecord framing (little-endian uint64 length, masked CRC-32C of the length, the data, masked
/// CRC-32C of the data) around <c>Event</c> protocol buffers. The messages are TorchSharp's generated
/// <c>Tensorboard.Event</c> classes serialized by Google.Protobuf; TorchSharp's own <c>SummaryWriter</c> is
/// not used because it cannot write the session-start event a resumed run needs, takes int steps and
/// writes a file-version wall time in .NET ticks (docs/training.md, "TensorBoard writer"). The first event
/// carries <c>file_version = "brain.Event:2"</c>; scalars are <c>Event.summary.value{tag, simple_value}</c>.
/// Not thread-safe; callers serialize access.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    /// <summary>The file version string of the first event.</summary>
    public const string FileVersion = "brain.Event:2";

    private readonly FileStream _stream;
    private readonly Func<double> _wallTime;
    private bool _disposed;

    /// <summary>
    /// Creates <paramref name="logDirectory"/> if needed and a new event file in it (a numeric suffix is
    /// added should a file of that name already exist), and writes the file-version event.
    /// </summary>
    public TensorBoardWriter(string logDirectory) : this(logDirectory, null) { }

    /// <summary>As <see cref="TensorBoardWriter(string)"/>, with the wall clock (unix seconds) injected.</summary>
    public TensorBoardWriter(string logDirectory, Func<double>? wallTime)
    {
        _wallTime = wallTime ?? (() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        Directory.CreateDirectory(logDirectory);
        var seconds = (long)Math.Floor(_wallTime());
        var host = SafeHostName();
        var baseName = $"events.out.tfevents.{seconds}.{host}";
        var path = Path.Combine(logDirectory, baseName);
        for (int i = 1; File.Exists(path); i++) path = Path.Combine(logDirectory, $"{baseName}.{i}");
        FilePath = path;
        _stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        WriteRecord(new Event { WallTime = _wallTime(), FileVersion = FileVersion });
        Flush();
    }

    /// <summary>The event file's full path.</summary>
    public string FilePath { get; }

    /// <summary>Appends one scalar event (<paramref name="tag"/>, <paramref name="value"/> at <paramref name="step"/>).</summary>
    public void AddScalar(string tag, float value, long step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(tag);
        var summary = new Summary();
        summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = value });
        WriteRecord(new Event { WallTime = _wallTime(), Step = step, Summary = summary });
    }

    /// <summary>
    /// Appends a <c>SessionLog</c> START event at <paramref name="step"/>: TensorBoard then discards the
    /// events of earlier files at this step or later (used when a run resumes from a checkpoint).
    /// </summary>
    public void AddSessionStart(long step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WriteRecord(new Event
        {
            WallTime = _wallTime(),
            Step = step,
            SessionLog = new SessionLog { Status = SessionLog.Types.SessionStatus.Start },
        });
    }

    /// <summary>Flushes written events to the file.</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _stream.Flush();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stream.Dispose();
    }

    private void WriteRecord(Event ev)
    {
        var data = ev.ToByteArray();
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Crc32C.Masked(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Masked(data));
        _stream.Write(header);
        _stream.Write(data);
        _stream.Write(footer);
    }

    private static string SafeHostName()
    {
        string host;
        try
        {
            host = Environment.MachineName;
        }
        catch (InvalidOperationException)
        {
            host = "localhost";
        }
        var sb = new StringBuilder(host.Length);
        foreach (var c in host) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        return sb.Length == 0 ? "localhost" : sb.ToString();
    }
}
