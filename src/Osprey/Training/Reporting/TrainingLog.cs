using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Osprey.Training.Reporting;

/// <summary>
/// The training run's metric log, in ms-swift's layout: every record is appended as one JSON line to
/// <c>&lt;run&gt;/logging.jsonl</c>, its numeric values are written as TensorBoard scalars under
/// <c>&lt;run&gt;/runs/</c> (tag <c>train/&lt;key&gt;</c>, or <c>eval/&lt;rest&gt;</c> for keys starting
/// with <c>eval_</c>; the step is the record's <c>global_step</c>, and records without one go to the
/// JSON lines only), and <see cref="WritePlots"/> renders PNG curves into <c>&lt;run&gt;/images/</c>.
/// Thread-safe.
/// </summary>
public sealed class TrainingLog : IDisposable
{
    /// <summary>The JSON-lines file's name in the run folder.</summary>
    public const string JsonlFileName = "logging.jsonl";

    /// <summary>The record key holding the optimizer step.</summary>
    public const string StepKey = "global_step";

    /// <summary>The keys <see cref="WritePlots"/> draws, in order.</summary>
    public static IReadOnlyList<string> PlotKeys { get; } = ["loss", "learning_rate", "grad_norm", "token_acc", "eval_loss", "eval_token_acc"];

    private readonly object _gate = new();
    private readonly Dictionary<string, List<(double X, double Y)>> _series = new(StringComparer.Ordinal);
    private readonly List<string> _extraPlotKeys = [];
    private readonly StreamWriter _jsonl;
    private TensorBoardWriter? _tensorBoard;
    private bool _disposed;

    /// <summary>
    /// Opens the log of <paramref name="runDirectory"/> (created if needed). An existing
    /// <c>logging.jsonl</c> is kept and appended to and its values are loaded into the plotted series.
    /// With <paramref name="resumeStep"/> (resuming from the checkpoint at that step) its lines whose
    /// <c>global_step</c> is greater are dropped first (the file is rewritten through a temporary file
    /// and a rename), and the new TensorBoard file starts with a session-start event at
    /// <paramref name="resumeStep"/> + 1 so that TensorBoard discards the old file's later points too.
    /// A malformed last line (a write cut short) is dropped as well.
    /// </summary>
    public TrainingLog(string runDirectory, long? resumeStep = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(runDirectory);
        RunDirectory = Path.GetFullPath(runDirectory);
        Directory.CreateDirectory(RunDirectory);
        JsonlPath = Path.Combine(RunDirectory, JsonlFileName);
        TensorBoardDirectory = Path.Combine(RunDirectory, "runs");
        ImagesDirectory = Path.Combine(RunDirectory, "images");

        if (File.Exists(JsonlPath)) LoadExisting(resumeStep);
        var stream = new FileStream(JsonlPath, FileMode.Append, FileAccess.Write, FileShare.Read);
        _jsonl = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n" };
        _tensorBoard = new TensorBoardWriter(TensorBoardDirectory);
        if (resumeStep is long r)
        {
            _tensorBoard.AddSessionStart(r + 1);
            _tensorBoard.Flush();
        }
    }

    /// <summary>The run folder (full path).</summary>
    public string RunDirectory { get; }

    /// <summary>Full path of <c>logging.jsonl</c>.</summary>
    public string JsonlPath { get; }

    /// <summary>Folder of the TensorBoard event files (<c>&lt;run&gt;/runs</c>).</summary>
    public string TensorBoardDirectory { get; }

    /// <summary>Folder of the PNG plots (<c>&lt;run&gt;/images</c>).</summary>
    public string ImagesDirectory { get; }

    /// <summary>The current TensorBoard event file.</summary>
    public string TensorBoardFile => _tensorBoard?.FilePath ?? "";

    /// <summary>
    /// Appends one record. Values may be <see cref="double"/>, <see cref="float"/>, <see cref="long"/>,
    /// <see cref="int"/>, <see cref="string"/>, <see cref="bool"/> or null; doubles are written as
    /// round-trippable JSON numbers, NaN and infinities as the strings <c>"nan"</c>, <c>"inf"</c>,
    /// <c>"-inf"</c>. The line is flushed at once.
    /// </summary>
    public void Append(IReadOnlyDictionary<string, object?> record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var line = Serialize(record);
        long? step = record.TryGetValue(StepKey, out var s) ? StepOf(s) : null;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _jsonl.Write(line);
            _jsonl.Write('\n');
            _jsonl.Flush();
            if (step is not long st) return;
            foreach (var (key, value) in record)
            {
                if (key == StepKey || !TryNumber(value, out var number)) continue;
                AddPoint(key, st, number);
                _tensorBoard!.AddScalar(TagOf(key), (float)number, st);
            }
            _tensorBoard!.Flush();
        }
    }

    /// <summary>Adds <paramref name="keys"/> (such as a benchmark's <c>eval_mmlu</c>) to the keys <see cref="WritePlots"/> draws.</summary>
    public void PlotAlso(IEnumerable<string> keys)
    {
        lock (_gate) foreach (var k in keys) if (!PlotKeys.Contains(k) && !_extraPlotKeys.Contains(k)) _extraPlotKeys.Add(k);
    }

    /// <summary>
    /// Writes <c>images/train_&lt;key&gt;.png</c> or <c>images/eval_&lt;key&gt;.png</c> for each of
    /// <see cref="PlotKeys"/> that has at least one logged point (with <see cref="TrainingPlots.WriteCurve"/>;
    /// a train key's chart also shows its <c>eval_</c> counterpart's points); returns the files written.
    /// </summary>
    public IReadOnlyList<string> WritePlots()
    {
        List<(string Key, List<(double X, double Y)> Points, List<(double X, double Y)>? Eval)> todo;
        lock (_gate)
        {
            todo = PlotKeys.Concat(_extraPlotKeys).Where(k => _series.TryGetValue(k, out var p) && p.Count >= 1)
                .Select(k => (k, _series[k].ToList(),
                    !k.StartsWith("eval_", StringComparison.Ordinal) && _series.TryGetValue("eval_" + k, out var e) ? e.ToList() : null))
                .ToList();
        }
        var written = new List<string>();
        foreach (var (key, points, eval) in todo)
        {
            var path = Path.Combine(ImagesDirectory, PlotFileName(key));
            TrainingPlots.WriteCurve(path, TagOf(key), points, eval);
            written.Add(path);
        }
        return written;
    }

    /// <summary>
    /// <see cref="WritePlots"/> for a running job: the curves are a view of <c>logging.jsonl</c>, so a chart that cannot
    /// be drawn (SkiaSharp's native library missing from a trimmed deployment, a full disk) is one warning line on
    /// <paramref name="warnings"/> rather than the end of a training run whose weights and log are intact.
    /// </summary>
    public IReadOnlyList<string> TryWritePlots(TextWriter warnings)
    {
        try
        {
            return WritePlots();
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or IOException or UnauthorizedAccessException)
        {
            warnings.WriteLine($"osprey: warning: the curves in {ImagesDirectory} were not drawn ({e.GetBaseException().Message}); logging.jsonl and the TensorBoard files are complete.");
            return [];
        }
    }

    /// <summary>The points logged so far for <paramref name="key"/> (step, value), in logging order.</summary>
    public IReadOnlyList<(double X, double Y)> Series(string key)
    {
        lock (_gate) return _series.TryGetValue(key, out var p) ? p.ToList() : [];
    }

    /// <summary>The plot file name of a key: <c>eval_&lt;rest&gt;.png</c> for <c>eval_</c> keys, else <c>train_&lt;key&gt;.png</c>.</summary>
    public static string PlotFileName(string key) =>
        key.StartsWith("eval_", StringComparison.Ordinal) ? key + ".png" : "train_" + key + ".png";

    /// <summary>The TensorBoard tag of a key: <c>eval/&lt;rest&gt;</c> for <c>eval_</c> keys, else <c>train/&lt;key&gt;</c>.</summary>
    public static string TagOf(string key) =>
        key.StartsWith("eval_", StringComparison.Ordinal) ? "eval/" + key["eval_".Length..] : "train/" + key;

    /// <summary>
    /// Reads a JSON-lines file: one dictionary per non-blank line (values cloned, usable after return).
    /// A malformed last line (a write cut short) is skipped; a malformed earlier line is an error.
    /// </summary>
    public static IReadOnlyList<Dictionary<string, JsonElement>> ReadJsonl(string path) =>
        ReadLines(path).Select(l => l.Record).ToList();

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _jsonl.Dispose();
            _tensorBoard?.Dispose();
            _tensorBoard = null;
        }
    }

    private void LoadExisting(long? resumeStep)
    {
        var lines = ReadLines(JsonlPath);
        var kept = resumeStep is long r
            ? lines.Where(l => StepOf(l.Record) is not long s || s <= r).ToList()
            : lines;
        var original = File.ReadAllText(JsonlPath);
        var rewritten = string.Concat(kept.Select(l => l.Text + "\n"));
        if (!string.Equals(original, rewritten, StringComparison.Ordinal))
        {
            var tmp = JsonlPath + "." + Guid.NewGuid().ToString("N") + ".tmp";
            try
            {
                File.WriteAllText(tmp, rewritten, new UTF8Encoding(false));
                File.Move(tmp, JsonlPath, overwrite: true);
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
        }
        foreach (var (_, record) in kept)
        {
            if (StepOf(record) is not long step) continue;
            foreach (var (key, value) in record)
                if (key != StepKey && value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d))
                    AddPoint(key, step, d);
        }
    }

    private void AddPoint(string key, long step, double value)
    {
        if (!_series.TryGetValue(key, out var list)) _series[key] = list = [];
        list.Add((step, value));
    }

    private static List<(string Text, Dictionary<string, JsonElement> Record)> ReadLines(string path)
    {
        var raw = File.ReadAllText(path).Split('\n');
        var result = new List<(string, Dictionary<string, JsonElement>)>();
        int last = Array.FindLastIndex(raw, l => !string.IsNullOrWhiteSpace(l));
        for (int i = 0; i <= last; i++)
        {
            var text = raw[i].TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(text)) continue;
            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException("not a JSON object");
                var record = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
                foreach (var p in doc.RootElement.EnumerateObject()) record[p.Name] = p.Value.Clone();
                result.Add((text, record));
            }
            catch (JsonException e)
            {
                if (i == last) break;
                throw new InvalidDataException($"{path}:{i + 1}: not a JSON object: {e.Message}", e);
            }
        }
        return result;
    }

    private static long? StepOf(Dictionary<string, JsonElement> record) =>
        record.TryGetValue(StepKey, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var s) ? s : null;

    private static long? StepOf(object? value) => value switch
    {
        long l => l,
        int i => i,
        double d when double.IsFinite(d) && d == Math.Floor(d) => (long)d,
        _ => null,
    };

    private static bool TryNumber(object? value, out double number)
    {
        switch (value)
        {
            case double d: number = d; return true;
            case float f: number = f; return true;
            case long l: number = l; return true;
            case int i: number = i; return true;
            default: number = 0; return false;
        }
    }

    private static string Serialize(IReadOnlyDictionary<string, object?> record)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (var (key, value) in record)
            {
                w.WritePropertyName(key);
                switch (value)
                {
                    case null: w.WriteNullValue(); break;
                    case double d: WriteDouble(w, d); break;
                    case float f: WriteDouble(w, f); break;
                    case long l: w.WriteNumberValue(l); break;
                    case int i: w.WriteNumberValue(i); break;
                    case string s: w.WriteStringValue(s); break;
                    case bool b: w.WriteBooleanValue(b); break;
                    default: w.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture)); break;
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteDouble(Utf8JsonWriter w, double d)
    {
        if (double.IsNaN(d)) w.WriteStringValue("nan");
        else if (double.IsPositiveInfinity(d)) w.WriteStringValue("inf");
        else if (double.IsNegativeInfinity(d)) w.WriteStringValue("-inf");
        else w.WriteNumberValue(d);
    }
}
