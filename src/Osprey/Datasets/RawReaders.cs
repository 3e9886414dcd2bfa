using System.Globalization;
using System.Text;
using System.Text.Json;
using Osprey.Hub;
using Osprey.Templates;
using Parquet.Serialization;

namespace Osprey.Datasets;

/// <summary>One row as read from a file, before format detection: plain .NET values, or the error that made it unreadable.</summary>
internal sealed record RawRow(string Source, long Line, Dictionary<string, object?>? Fields, string? Error = null, string? Field = null);

/// <summary>A problem with one row; <see cref="Field"/> names the field when one is at fault.</summary>
internal sealed class RowError(string message, string? field = null) : Exception(message)
{
    public string? Field { get; } = field;
}

/// <summary>Readers of the local file types: .jsonl, .json, .csv/.tsv, .parquet, .txt.</summary>
internal static class RawReaders
{
    /// <summary>
    /// Stands in for invalid UTF-8 bytes as they are decoded: a noncharacter (reserved for a program's internal use,
    /// never in interchanged text), so a row holding it is reported with its line instead of trained on as U+FFFD.
    /// </summary>
    internal const char InvalidByte = '\uFDD0';

    private static readonly Encoding Utf8 = Encoding.GetEncoding("utf-8", EncoderFallback.ReplacementFallback, new DecoderReplacementFallback(InvalidByte.ToString()));

    private const string InvalidUtf8 = "has bytes that are not valid UTF-8; save the file as UTF-8 or fix the row";

    /// <summary>True for the file types read here; Hub keeps the extension list, as its cache lookup needs it too.</summary>
    public static bool IsDataFile(string path) => HubDatasetCache.IsDataFile(path);

    /// <summary>The data files of a file or a folder (recursively, sorted by path).</summary>
    public static IReadOnlyList<string> Files(string path)
    {
        if (File.Exists(path))
        {
            if (!IsDataFile(path))
                throw new OspreyException($"Dataset file {path} has an extension Osprey does not read; use .jsonl, .json, .csv, .tsv, .parquet or .txt.");
            return [path];
        }
        var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
            .Where(IsDataFile)
            .Where(f => !Path.GetRelativePath(path, f).Split(Path.DirectorySeparatorChar).Any(p => p.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new OspreyException($"Dataset folder {path} has no .jsonl, .json, .csv, .tsv, .parquet or .txt files; put data files in it or pass a file.");
        return files;
    }

    /// <summary>Reads a file lazily, row by row (a .json file or a .parquet file is parsed whole, then yielded).</summary>
    public static IEnumerable<RawRow> Read(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".jsonl" => ReadJsonLines(path),
            ".json" => ReadJson(path),
            ".csv" => ReadDelimited(path, ','),
            ".tsv" => ReadDelimited(path, '\t'),
            ".parquet" => ReadParquet(path),
            ".txt" => ReadText(path),
            _ => throw new OspreyException($"Dataset file {path} has an extension Osprey does not read; use .jsonl, .json, .csv, .tsv, .parquet or .txt."),
        };
    }

    private static IEnumerable<RawRow> ReadJsonLines(string path)
    {
        using var reader = new StreamReader(path, Utf8);
        long line = 0;
        while (reader.ReadLine() is { } text)
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            yield return text.Contains(InvalidByte) ? new RawRow(path, line, null, InvalidUtf8) : ParseObject(path, line, text);
        }
    }

    private static RawRow ParseObject(string path, long line, string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                return new RawRow(path, line, null, "not a JSON object; write one object per line, e.g. {\"messages\": [...]}");
            return new RawRow(path, line, (Dictionary<string, object?>)Plain.From(doc.RootElement)!);
        }
        catch (JsonException e)
        {
            return new RawRow(path, line, null, $"not valid JSON ({FirstSentence(e.Message)}); fix the line or remove it");
        }
    }

    private static IEnumerable<RawRow> ReadJson(string path)
    {
        JsonDocument doc;
        var bytes = File.ReadAllBytes(path);
        if (FirstInvalidUtf8(bytes) is { } bad)
            throw new OspreyException($"Dataset file {path} line {bytes.AsSpan(0, bad).Count((byte)'\n') + 1} has bytes that are not valid UTF-8; save the file as UTF-8.");
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            var at = e.LineNumber is { } l ? $" line {l + 1}" : "";
            throw new OspreyException($"Dataset file {path}{at} is not valid JSON ({FirstSentence(e.Message)}); a .json dataset is one array of objects or {{\"data\": [...]}} (one object per line is .jsonl).", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array)
                root = data;
            if (root.ValueKind != JsonValueKind.Array)
                throw new OspreyException($"Dataset file {path} is neither a JSON array nor an object with a \"data\" array; write [{{...}}, {{...}}] or {{\"data\": [...]}}.");
            var rows = new List<RawRow>();
            long index = 0;
            foreach (var item in root.EnumerateArray())
            {
                index++;
                rows.Add(item.ValueKind == JsonValueKind.Object
                    ? new RawRow(path, index, (Dictionary<string, object?>)Plain.From(item)!)
                    : new RawRow(path, index, null, "not a JSON object; every item of the array must be an object such as {\"messages\": [...]}"));
            }
            return rows;
        }
    }

    /// <summary>Where the first invalid UTF-8 sequence starts; null when there is none.</summary>
    private static int? FirstInvalidUtf8(byte[] bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return null;
        var chars = new char[bytes.Length];
        var status = System.Text.Unicode.Utf8.ToUtf16(bytes, chars, out var read, out _, replaceInvalidSequences: false);
        return status == System.Buffers.OperationStatus.Done ? null : read;
    }

    private static IEnumerable<RawRow> ReadText(string path)
    {
        using var reader = new StreamReader(path, Utf8);
        long line = 0;
        while (reader.ReadLine() is { } text)
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            yield return text.Contains(InvalidByte) ? new RawRow(path, line, null, InvalidUtf8) : new RawRow(path, line, new Dictionary<string, object?> { ["text"] = text });
        }
    }

    private static IEnumerable<RawRow> ReadDelimited(string path, char delimiter)
    {
        using var reader = new StreamReader(path, Utf8);
        var lines = new LineCounter();
        var header = ReadRecord(reader, delimiter, lines, out var headerError);
        if (header is null) yield break;
        if (headerError is not null) throw new OspreyException($"Dataset file {path} header {headerError}.");
        for (var i = 0; i < header.Count; i++) header[i] = header[i].Trim();
        long row = 0;
        while (true)
        {
            row++;
            var record = ReadRecord(reader, delimiter, lines, out var error);
            if (error is not null)
            {
                yield return new RawRow(path, row, null, error);
                // An unclosed quote ran to the end of the file; anything else resumes at the next line.
                if (record is null) yield break;
                continue;
            }
            if (record is null) yield break;
            if (record.Count == 1 && record[0].Length == 0) { row--; continue; }
            if (record.Count != header.Count)
            {
                yield return new RawRow(path, row, null, $"{record.Count} fields but the header has {header.Count}; quote fields that contain '{(delimiter == '\t' ? "\\t" : delimiter)}' with \"...\"");
                continue;
            }
            var fields = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (var i = 0; i < header.Count; i++) fields[header[i]] = record[i].Length == 0 ? null : record[i];
            yield return new RawRow(path, row, fields);
        }
    }

    /// <summary>The file line the reader is on (from 1), for messages about records that span lines.</summary>
    private sealed class LineCounter
    {
        public long Line { get; set; } = 1;
    }

    /// <summary>
    /// One CSV record (RFC 4180: quoted fields may hold delimiters, doubled quotes and newlines); null at the end.
    /// A record is bad (<paramref name="error"/> says why and where, the reader skips to the end of its line) when a
    /// closing quote is followed by anything but a delimiter or a line end (an unbalanced quote would otherwise
    /// swallow the rows up to the next quote into one field), when a quote is never closed (the record is null), or
    /// when it holds bytes that are not UTF-8.
    /// </summary>
    private static List<string>? ReadRecord(TextReader reader, char delimiter, LineCounter lines, out string? error)
    {
        error = null;
        if (reader.Peek() < 0) return null;
        var fields = new List<string>();
        var sb = new StringBuilder();
        var quoted = false;
        var wasQuoted = false;
        var closedQuote = false;
        var resync = false;
        long quoteLine = 0;
        while (true)
        {
            var c = reader.Read();
            if (c == '\n' || (c == '\r' && reader.Peek() != '\n')) lines.Line++;
            if (c == InvalidByte && error is null) error = $"has bytes that are not valid UTF-8 (on line {lines.Line}); save the file as UTF-8 or fix the row";
            if (quoted)
            {
                if (c < 0)
                {
                    error = $"a quoted field is never closed (it opens on line {quoteLine}); end it with \", or double a quote inside it (\"\")";
                    return null;
                }
                if (c == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); sb.Append('"'); }
                    else { quoted = false; closedQuote = true; }
                }
                else sb.Append((char)c);
                continue;
            }
            if (c < 0 || c == '\n' || c == '\r')
            {
                if (c == '\r' && reader.Peek() == '\n') { reader.Read(); lines.Line++; }
                fields.Add(sb.ToString());
                return fields;
            }
            if (closedQuote && c != delimiter && !resync)
            {
                resync = true;
                error = lines.Line == quoteLine
                    ? $"has text after the closing quote of a quoted field on line {quoteLine}; double a quote inside a quoted field (\"\") or quote the whole field"
                    : $"has a quoted field that opens on line {quoteLine} and closes on line {lines.Line} with text after its closing quote, so a quote is likely unbalanced; close it, or double a quote inside a quoted field (\"\")";
            }
            closedQuote = false;
            if (resync) continue;
            if (c == delimiter)
            {
                fields.Add(sb.ToString());
                sb.Clear();
                wasQuoted = false;
            }
            else if (c == '"' && sb.Length == 0 && !wasQuoted)
            {
                quoted = true;
                wasQuoted = true;
                quoteLine = lines.Line;
            }
            else sb.Append((char)c);
        }
    }

    private static IEnumerable<RawRow> ReadParquet(string path)
    {
        DeserializationResult<Dictionary<string, object>> result;
        CheckParquetFooter(path);
        try
        {
            using var stream = File.OpenRead(path);
            result = ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OspreyException and not OutOfMemoryException)
        {
            throw new OspreyException($"Dataset file {path} could not be read as Parquet ({e.Message}); check that it is a complete .parquet file.", e);
        }
        long row = 0;
        foreach (var dict in result.Data)
        {
            row++;
            var fields = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (k, v) in dict) fields[k] = FromParquet(v);
            yield return new RawRow(path, row, fields);
        }
    }

    /// <summary>
    /// Checks the frame Parquet.Net trusts before it allocates: "PAR1" at both ends and a footer length that fits in the
    /// file (a corrupt length would otherwise be allocated as asked, gigabytes included).
    /// </summary>
    private static void CheckParquetFooter(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        Span<byte> tail = stackalloc byte[8];
        var length = stream.Length;
        var framed = length >= 12 && stream.Read(head) == 4 && head.SequenceEqual("PAR1"u8);
        if (framed)
        {
            stream.Seek(-8, SeekOrigin.End);
            stream.ReadExactly(tail);
            framed = tail[4..].SequenceEqual("PAR1"u8);
        }
        if (!framed) throw new OspreyException($"Dataset file {path} is not a Parquet file (it does not begin and end with \"PAR1\"); check that it is a complete .parquet file.");
        var footer = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(tail);
        if (footer > length - 12)
            throw new OspreyException($"Dataset file {path} is a damaged Parquet file: its footer claims {footer:N0} bytes of metadata but the file has {length:N0} bytes; check that it is a complete .parquet file.");
    }

    private static object? FromParquet(object? value) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        float f => (double)f,
        decimal m => (double)m,
        DateTime d => d.ToString("O", CultureInfo.InvariantCulture),
        byte[] bytes => Convert.ToBase64String(bytes),
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => FromParquet(kv.Value)),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(FromParquet).ToList(),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    internal static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return (cut < 0 ? message : message[..cut]).TrimEnd('.');
    }
}
