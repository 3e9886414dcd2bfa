using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Osprey.Tokenization;

/// <summary>A tokenizer.json normalizer: rewrites text while keeping each char's original span.</summary>
internal abstract class Normalizer
{
    public abstract NormalizedText Normalize(NormalizedText text);

    public static Normalizer? FromJson(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        var type = TokenizerJson.Type(e, path);
        switch (type)
        {
            case "NFC": return new UnicodeNormalizer(NormForm.C);
            case "NFD": return new UnicodeNormalizer(NormForm.D);
            case "NFKC": return new UnicodeNormalizer(NormForm.KC);
            case "NFKD": return new UnicodeNormalizer(NormForm.KD);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "Strip":
                return new StripNormalizer(TokenizerJson.Bool(e, "strip_left", true), TokenizerJson.Bool(e, "strip_right", true));
            case "Prepend": return new PrependNormalizer(TokenizerJson.String(e, "prepend", path));
            case "Replace":
                return new ReplaceNormalizer(TokenizerJson.Pattern(e.GetProperty("pattern"), path + ".pattern"), TokenizerJson.String(e, "content", path));
            case "Sequence":
                var list = new List<Normalizer>();
                var i = 0;
                foreach (var child in e.GetProperty("normalizers").EnumerateArray())
                {
                    var n = FromJson(child, $"{path}.normalizers[{i++}]");
                    if (n is not null) list.Add(n);
                }
                return list.Count == 1 ? list[0] : new SequenceNormalizer(list);
            default:
                throw TokenizerJson.Unsupported("normalizer", type, path);
        }
    }

    /// <summary>Applies a per-chunk rewrite: each chunk's output chars all map to the chunk's original span.</summary>
    protected static NormalizedText RewriteChunks(NormalizedText text, Func<int, int> chunkEnd, Func<string, string> rewrite)
    {
        var builder = new NormalizedTextBuilder(text.Length + 8, text.Offset);
        var i = 0;
        while (i < text.Length)
        {
            var end = chunkEnd(i);
            var chunk = text.Text.Substring(i, end - i);
            var output = rewrite(chunk);
            if (output == chunk)
            {
                builder.AppendFrom(text, i, end);
            }
            else
            {
                builder.Append(output, text.OriginalStart(i), text.OriginalEnd(end - 1));
            }
            i = end;
        }
        return builder.Build();
    }

    protected static int CodePointAt(string s, int i, out int length)
    {
        if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(s[i], s[i + 1]);
        }
        length = 1;
        return s[i];
    }
}

internal sealed class UnicodeNormalizer(NormForm form) : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        if (UnicodeNormalization.IsTriviallyNormalized(text.Text, form)) return text;
        var s = text.Text;
        var builder = new NormalizedTextBuilder(s.Length + 8, text.Offset);
        var inputStarts = new List<int>();
        var i = 0;
        while (i < s.Length)
        {
            // A chunk runs to the next code point that cannot interact with what precedes it.
            inputStarts.Clear();
            inputStarts.Add(i);
            CodePointAt(s, i, out var len);
            var end = i + len;
            while (end < s.Length)
            {
                var cp = CodePointAt(s, end, out len);
                if (UnicodeNormalization.IsChunkStart(cp, form)) break;
                inputStarts.Add(end);
                end += len;
            }
            var output = UnicodeNormalization.Normalize(s.AsSpan(i, end - i), form);
            if (string.CompareOrdinal(output, 0, s, i, end - i) == 0 && output.Length == end - i)
            {
                builder.AppendFrom(text, i, end);
            }
            else
            {
                // As HF's alignment does: output code point k takes the span of input code point k (the last
                // input code point for any extra output).
                var k = 0;
                for (var o = 0; o < output.Length; k++)
                {
                    var olen = char.IsHighSurrogate(output[o]) && o + 1 < output.Length ? 2 : 1;
                    var src = inputStarts[Math.Min(k, inputStarts.Count - 1)];
                    var srcEnd = k + 1 < inputStarts.Count ? inputStarts[Math.Min(k, inputStarts.Count - 1) + 1] - 1 : end - 1;
                    if (k >= inputStarts.Count) srcEnd = end - 1;
                    builder.Append(output.AsSpan(o, olen), text.OriginalStart(src), text.OriginalEnd(srcEnd));
                    o += olen;
                }
            }
            i = end;
        }
        return builder.Build();
    }
}

internal sealed class LowercaseNormalizer : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        var lower = text.Text.ToLowerInvariant();
        if (lower == text.Text) return text;
        var s = text.Text;
        int ChunkEnd(int i)
        {
            CodePointAt(s, i, out var len);
            return i + len;
        }
        return RewriteChunks(text, ChunkEnd, chunk => chunk.ToLowerInvariant());
    }
}

internal sealed class StripAccentsNormalizer : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        var builder = new NormalizedTextBuilder(text.Length, text.Offset);
        var changed = false;
        for (var i = 0; i < text.Length; i++)
        {
            if (CharUnicodeInfo.GetUnicodeCategory(text.Text[i]) == UnicodeCategory.NonSpacingMark)
            {
                changed = true;
                continue;
            }
            builder.AppendFrom(text, i, i + 1);
        }
        return changed ? builder.Build() : text;
    }
}

internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        var start = 0;
        var end = text.Length;
        if (left) while (start < end && char.IsWhiteSpace(text.Text[start])) start++;
        if (right) while (end > start && char.IsWhiteSpace(text.Text[end - 1])) end--;
        return text.Slice(start, end);
    }
}

internal sealed class PrependNormalizer(string prefix) : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        if (text.Length == 0 || prefix.Length == 0) return text;
        var builder = new NormalizedTextBuilder(text.Length + prefix.Length, text.Offset);
        builder.Append(prefix, text.OriginalStart(0), text.OriginalCodePointEnd(0));
        builder.AppendFrom(text, 0, text.Length);
        return builder.Build();
    }
}

internal sealed class ReplaceNormalizer(SplitPattern pattern, string content) : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        var matches = pattern.Find(text.Text);
        if (matches.Count == 0) return text;
        var builder = new NormalizedTextBuilder(text.Length + 8, text.Offset);
        var previous = 0;
        foreach (var (start, end) in matches)
        {
            builder.AppendFrom(text, previous, start);
            if (content.Length > 0)
            {
                // Each replacement char takes the span of the char it replaces (the last one for longer content).
                for (var k = 0; k < content.Length; k++)
                {
                    var src = Math.Min(start + k, end - 1);
                    builder.Append(content[k], text.OriginalStart(src), text.OriginalEnd(src));
                }
            }
            previous = end;
        }
        builder.AppendFrom(text, previous, text.Length);
        return builder.Build();
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> normalizers) : Normalizer
{
    public override NormalizedText Normalize(NormalizedText text)
    {
        foreach (var n in normalizers) text = n.Normalize(text);
        return text;
    }
}

/// <summary>A Split/Replace pattern: a literal string or a regular expression (Oniguruma syntax as HF uses it).</summary>
internal sealed class SplitPattern
{
    private readonly string? _literal;
    private readonly UnicodeRegex? _regex;

    private SplitPattern(string? literal, UnicodeRegex? regex)
    {
        _literal = literal;
        _regex = regex;
    }

    public static SplitPattern Literal(string s) => new(s, null);

    public static SplitPattern Regex(string pattern) => new(null, new UnicodeRegex(pattern));

    public UnicodeRegex? RegexOrNull => _regex;

    /// <summary>All non-overlapping, non-empty matches, left to right, as UTF-16 [start, end).</summary>
    public List<(int Start, int End)> Find(string text)
    {
        var result = new List<(int, int)>();
        if (_literal is not null)
        {
            if (_literal.Length == 0) return result;
            var i = 0;
            while ((i = text.IndexOf(_literal, i, StringComparison.Ordinal)) >= 0)
            {
                result.Add((i, i + _literal.Length));
                i += _literal.Length;
            }
            return result;
        }
        _regex!.Matches(text, result);
        return result;
    }

    /// <summary>True when the single char matches the pattern (for char-predicate splits).</summary>
    public override string ToString() => _literal ?? _regex!.Pattern;
}
