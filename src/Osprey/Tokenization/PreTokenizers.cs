using System.Text.Json;

namespace Osprey.Tokenization;

/// <summary>A piece of pre-tokenized text; <see cref="ByteLevel"/> pieces are fed to the model as byte-level chars.</summary>
internal readonly record struct Piece(NormalizedText Text, bool ByteLevel);

internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>A tokenizer.json pre-tokenizer: splits normalized text into pieces the model encodes separately.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Splits each piece, appending the results to <paramref name="output"/>.</summary>
    public abstract void Split(List<Piece> input, List<Piece> output);

    public static PreTokenizer? FromJson(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        var type = TokenizerJson.Type(e, path);
        switch (type)
        {
            case "Sequence":
                var list = new List<PreTokenizer>();
                var i = 0;
                foreach (var child in e.GetProperty("pretokenizers").EnumerateArray())
                {
                    var p = FromJson(child, $"{path}.pretokenizers[{i++}]");
                    if (p is not null) list.Add(p);
                }
                for (var k = 0; k < list.Count - 1; k++)
                {
                    if (list[k] is ByteLevelPreTokenizer)
                        throw new OspreyException($"tokenizer.json {path}: a ByteLevel pre-tokenizer followed by other pre-tokenizers is not supported; ByteLevel must come last.");
                }
                return new SequencePreTokenizer(list);
            case "Split":
                return new SplitPreTokenizer(
                    TokenizerJson.Pattern(e.GetProperty("pattern"), path + ".pattern"),
                    ParseBehavior(TokenizerJson.String(e, "behavior", path), path),
                    TokenizerJson.Bool(e, "invert", false));
            case "ByteLevel":
                return new ByteLevelPreTokenizer(TokenizerJson.Bool(e, "add_prefix_space", true), TokenizerJson.Bool(e, "use_regex", true));
            case "Metaspace":
                return new MetaspacePreTokenizer(e, path);
            case "Digits":
                return new CharClassPreTokenizer(char.IsNumber,
                    TokenizerJson.Bool(e, "individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
            case "Punctuation":
                return new CharClassPreTokenizer(IsPunctuation,
                    e.TryGetProperty("behavior", out var b) && b.ValueKind == JsonValueKind.String ? ParseBehavior(b.GetString()!, path) : SplitBehavior.Isolated);
            case "WhitespaceSplit":
                return new CharClassPreTokenizer(char.IsWhiteSpace, SplitBehavior.Removed);
            case "Whitespace":
                return new SplitPreTokenizer(SplitPattern.Regex(@"\w+|[^\w\s]+"), SplitBehavior.Removed, invert: true);
            default:
                throw TokenizerJson.Unsupported("pre-tokenizer", type, path);
        }
    }

    private static bool IsPunctuation(char c) => char.IsPunctuation(c) || (c < 128 && char.IsSymbol(c));

    private static SplitBehavior ParseBehavior(string s, string path) => s switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw new OspreyException($"tokenizer.json {path}.behavior: unknown split behavior '{s}'; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous."),
    };

    /// <summary>Splits text at the given matches (sorted, non-overlapping) the way HF's split behaviours do.</summary>
    protected static void SplitAt(Piece piece, List<(int Start, int End)> matches, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        var length = piece.Text.Length;
        if (matches.Count == 0 && !invert)
        {
            if (length > 0) output.Add(piece);
            return;
        }
        // Segments covering the whole text, flagged as match or not.
        var segments = new List<(int Start, int End, bool Match)>(matches.Count * 2 + 1);
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previous) segments.Add((previous, start, invert));
            segments.Add((start, end, !invert));
            previous = end;
        }
        if (previous < length) segments.Add((previous, length, invert));

        var result = new List<(int Start, int End)>(segments.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var s in segments) if (!s.Match) result.Add((s.Start, s.End));
                break;
            case SplitBehavior.Isolated:
                foreach (var s in segments) result.Add((s.Start, s.End));
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var previousMatch = false;
                foreach (var s in segments)
                {
                    if (s.Match && !previousMatch && result.Count > 0) result[^1] = (result[^1].Start, s.End);
                    else result.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var previousMatch = false;
                for (var k = segments.Count - 1; k >= 0; k--)
                {
                    var s = segments[k];
                    if (s.Match && !previousMatch && result.Count > 0) result[^1] = (s.Start, result[^1].End);
                    else result.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                result.Reverse();
                break;
            }
            case SplitBehavior.Contiguous:
            {
                var previousMatch = false;
                var first = true;
                foreach (var s in segments)
                {
                    if (!first && s.Match == previousMatch) result[^1] = (result[^1].Start, s.End);
                    else result.Add((s.Start, s.End));
                    previousMatch = s.Match;
                    first = false;
                }
                break;
            }
        }
        foreach (var (start, end) in result)
        {
            if (end > start) output.Add(piece with { Text = piece.Text.Slice(start, end) });
        }
    }

    protected static void RequireText(Piece piece, string name)
    {
        if (piece.ByteLevel)
            throw new OspreyException($"tokenizer.json: the {name} pre-tokenizer cannot run after ByteLevel; ByteLevel must come last.");
    }
}

internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> steps) : PreTokenizer
{
    public IReadOnlyList<PreTokenizer> Steps => steps;

    public override void Split(List<Piece> input, List<Piece> output)
    {
        var current = input;
        for (var i = 0; i < steps.Count; i++)
        {
            var next = i == steps.Count - 1 ? output : new List<Piece>(current.Count * 2);
            steps[i].Split(current, next);
            current = next;
        }
        if (steps.Count == 0) output.AddRange(input);
    }
}

internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    /// <summary>The regex of a plain isolating split (the shape byte-level tokenizers use), else null.</summary>
    public UnicodeRegex? IsolatingRegex => behavior == SplitBehavior.Isolated && !invert ? pattern.RegexOrNull : null;

    public override void Split(List<Piece> input, List<Piece> output)
    {
        foreach (var piece in input)
        {
            RequireText(piece, "Split");
            SplitAt(piece, pattern.Find(piece.Text.Text), behavior, invert, output);
        }
    }
}

internal sealed class CharClassPreTokenizer(Func<char, bool> predicate, SplitBehavior behavior) : PreTokenizer
{
    public override void Split(List<Piece> input, List<Piece> output)
    {
        foreach (var piece in input)
        {
            RequireText(piece, "char-class");
            var text = piece.Text.Text;
            var matches = new List<(int, int)>();
            for (var i = 0; i < text.Length; i++)
            {
                if (predicate(text[i])) matches.Add((i, i + 1));
            }
            SplitAt(piece, matches, behavior, false, output);
        }
    }
}

/// <summary>GPT-2 byte-level pre-tokenization: optional prefix space, the GPT-2 regex, then bytes as chars (done by the model).</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    public bool AddPrefixSpace => addPrefixSpace;

    public bool UseRegex => useRegex;

    internal static UnicodeRegex Gpt2Regex => s_gpt2.RegexOrNull!;

    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly SplitPattern s_gpt2 = SplitPattern.Regex(Gpt2Pattern);

    public override void Split(List<Piece> input, List<Piece> output)
    {
        var staged = new List<Piece>();
        foreach (var piece in input)
        {
            RequireText(piece, "ByteLevel");
            var text = piece.Text;
            if (addPrefixSpace && (text.Length == 0 || text.Text[0] != ' '))
            {
                var builder = new NormalizedTextBuilder(text.Length + 1, text.Offset);
                var start = text.Length > 0 ? text.OriginalStart(0) : text.Offset;
                var end = text.Length > 0 ? text.OriginalCodePointEnd(0) : text.Offset;
                builder.Append(' ', start, end);
                builder.AppendFrom(text, 0, text.Length);
                text = builder.Build();
            }
            staged.Clear();
            if (useRegex) SplitAt(new Piece(text, false), s_gpt2.Find(text.Text), SplitBehavior.Isolated, false, staged);
            else if (text.Length > 0) staged.Add(new Piece(text, false));
            foreach (var p in staged) output.Add(p with { ByteLevel = true });
        }
    }
}

internal sealed class MetaspacePreTokenizer : PreTokenizer
{
    private readonly char _replacement;
    private readonly string _scheme;
    private readonly bool _split;

    public MetaspacePreTokenizer(JsonElement e, string path)
    {
        var replacement = TokenizerJson.String(e, "replacement", path);
        if (replacement.Length != 1) throw new OspreyException($"tokenizer.json {path}.replacement must be one char, got '{replacement}'.");
        _replacement = replacement[0];
        if (e.TryGetProperty("prepend_scheme", out var scheme) && scheme.ValueKind == JsonValueKind.String) _scheme = scheme.GetString()!;
        else _scheme = TokenizerJson.Bool(e, "add_prefix_space", true) ? "always" : "never";
        _split = TokenizerJson.Bool(e, "split", true);
    }

    public override void Split(List<Piece> input, List<Piece> output)
    {
        foreach (var piece in input)
        {
            RequireText(piece, "Metaspace");
            var text = piece.Text;
            var builder = new NormalizedTextBuilder(text.Length + 1, text.Offset);
            var prepend = text.Length > 0 && text.Text[0] != _replacement && text.Text[0] != ' ' &&
                (_scheme == "always" || (_scheme == "first" && text.OriginalBegin == 0));
            if (text.Length > 0 && text.Text[0] == ' ') prepend = false;
            if (prepend) builder.Append(_replacement, text.OriginalStart(0), text.OriginalCodePointEnd(0));
            for (var i = 0; i < text.Length; i++)
            {
                builder.Append(text.Text[i] == ' ' ? _replacement : text.Text[i], text.OriginalStart(i), text.OriginalEnd(i));
            }
            var replaced = new Piece(builder.Build(), false);
            if (!_split)
            {
                if (replaced.Text.Length > 0) output.Add(replaced);
                continue;
            }
            var matches = new List<(int, int)>();
            for (var i = 0; i < replaced.Text.Length; i++)
            {
                if (replaced.Text.Text[i] == _replacement) matches.Add((i, i + 1));
            }
            SplitAt(replaced, matches, SplitBehavior.MergedWithNext, false, output);
        }
    }
}
