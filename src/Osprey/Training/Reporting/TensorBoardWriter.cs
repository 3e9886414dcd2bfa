using System.Buffers.Binary;
using System.Text;

namespace Osprey.Training.Reporting;

/// <summary>
/// Writes a TensorBoard event file (<c>events.out.tfevents.&lt;unix seconds&gt;.&lt;hostname&gt;</c>) in a log
/// folder: TFRecord framing (little-endian uint64 length, masked CRC-32C of the length, the data, masked
/// CRC-32C of the data) around hand-encoded <c>Event</c> protocol buffers. The first event carries
/// <c>file_version = "brain.Event:2"</c>; scalars are <c>Event.summary.value{tag, simple_value}</c>.
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
        var ev = new ProtoWriter();
        ev.Double(1, _wallTime());
        ev.String(3, FileVersion);
        WriteRecord(ev.ToArray());
        Flush();
    }

    /// <summary>The event file's full path.</summary>
    public string FilePath { get; }

    /// <summary>Appends one scalar event (<paramref name="tag"/>, <paramref name="value"/> at <paramref name="step"/>).</summary>
    public void AddScalar(string tag, float value, long step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(tag);
        var val = new ProtoWriter();
        val.String(1, tag);
        val.Float(2, value);
        var summary = new ProtoWriter();
        summary.Message(1, val.ToArray());
        var ev = new ProtoWriter();
        ev.Double(1, _wallTime());
        ev.Int64(2, step);
        ev.Message(5, summary.ToArray());
        WriteRecord(ev.ToArray());
    }

    /// <summary>
    /// Appends a <c>SessionLog</c> START event at <paramref name="step"/>: TensorBoard then discards the
    /// events of earlier files at this step or later (used when a run resumes from a checkpoint).
    /// </summary>
    public void AddSessionStart(long step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var log = new ProtoWriter();
        log.Int64(1, 1); // SessionLog.status = START
        var ev = new ProtoWriter();
        ev.Double(1, _wallTime());
        ev.Int64(2, step);
        ev.Message(6, log.ToArray());
        WriteRecord(ev.ToArray());
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

    private void WriteRecord(byte[] data)
    {
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

    /// <summary>A minimal protocol-buffer encoder for the few field kinds events need.</summary>
    private sealed class ProtoWriter
    {
        private readonly MemoryStream _buffer = new();

        public void Double(int field, double value)
        {
            Tag(field, 1);
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteDoubleLittleEndian(b, value);
            _buffer.Write(b);
        }

        public void Float(int field, float value)
        {
            Tag(field, 5);
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(b, value);
            _buffer.Write(b);
        }

        public void Int64(int field, long value)
        {
            if (value == 0) return; // proto3 default: omitted
            Tag(field, 0);
            Varint(unchecked((ulong)value));
        }

        public void String(int field, string value) => Message(field, Encoding.UTF8.GetBytes(value));

        public void Message(int field, byte[] bytes)
        {
            Tag(field, 2);
            Varint((ulong)bytes.Length);
            _buffer.Write(bytes);
        }

        public byte[] ToArray() => _buffer.ToArray();

        private void Tag(int field, int wireType) => Varint(((ulong)field << 3) | (uint)wireType);

        private void Varint(ulong v)
        {
            while (v >= 0x80)
            {
                _buffer.WriteByte((byte)(v | 0x80));
                v >>= 7;
            }
            _buffer.WriteByte((byte)v);
        }
    }
}
