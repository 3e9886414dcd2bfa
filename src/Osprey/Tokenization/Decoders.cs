using System.Text;
using System.Text.Json;

namespace Osprey.Tokenization;

/// <summary>A tokenizer.json decoder: turns token strings back into text pieces (HF's decode_chain).</summary>
internal abstract class Decoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    /// <summary>
    /// The raw bytes one vocabulary token stands for when this decoder defines them (byte-level and byte-fallback
    /// tokens, which may be part of a UTF-8 character), else null.
    /// </summary>
    public virtual byte[]? RawBytes(string token) => null;

    public static Decoder? FromJson(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        var type = TokenizerJson.Type(e, path);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Strip":
                return new StripDecoder(TokenizerJson.String(e, "content", path),
                    e.TryGetProperty("start", out var s) ? s.GetInt32() : 0, e.TryGetProperty("stop", out var t) ? t.GetInt32() : 0);
            case "Replace":
                return new ReplaceDecoder(TokenizerJson.Pattern(e.GetProperty("pattern"), path + ".pattern"), TokenizerJson.String(e, "content", path));
            case "Metaspace":
            {
                var replacement = TokenizerJson.String(e, "replacement", path);
                string scheme;
                if (e.TryGetProperty("prepend_scheme", out var p) && p.ValueKind == JsonValueKind.String) scheme = p.GetString()!;
                else scheme = TokenizerJson.Bool(e, "add_prefix_space", true) ? "always" : "never";
                return new MetaspaceDecoder(replacement[0], scheme != "never");
            }
            case "BPEDecoder":
                return new BpeSuffixDecoder(e.TryGetProperty("suffix", out var suffix) ? suffix.GetString() ?? "</w>" : "</w>");
            case "WordPiece":
                return new WordPieceDecoder(e.TryGetProperty("prefix", out var prefix) ? prefix.GetString() ?? "##" : "##", TokenizerJson.Bool(e, "cleanup", true));
            case "Sequence":
                var list = new List<Decoder>();
                var i = 0;
                foreach (var child in e.GetProperty("decoders").EnumerateArray())
                {
                    var d = FromJson(child, $"{path}.decoders[{i++}]");
                    if (d is not null) list.Add(d);
                }
                return new SequenceDecoder(list);
            default:
                throw TokenizerJson.Unsupported("decoder", type, path);
        }
    }
}

internal sealed class SequenceDecoder(IReadOnlyList<Decoder> decoders) : Decoder
{
    public override byte[]? RawBytes(string token)
    {
        foreach (var d in decoders)
            if (d.RawBytes(token) is { } bytes) return bytes;
        return null;
    }

    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in decoders) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>GPT-2 byte-level: each char stands for one byte; a token with a char outside the table keeps its UTF-8 bytes.</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override byte[]? RawBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            var b = ByteLevelAlphabet.CharToByte(token[i]);
            if (b < 0) return null;
            bytes[i] = (byte)b;
        }
        return bytes;
    }

    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        Span<byte> buffer = stackalloc byte[4];
        foreach (var token in tokens)
        {
            var start = bytes.Count;
            var ok = true;
            foreach (var c in token)
            {
                var b = ByteLevelAlphabet.CharToByte(c);
                if (b < 0)
                {
                    ok = false;
                    break;
                }
                bytes.Add((byte)b);
            }
            if (!ok)
            {
                bytes.RemoveRange(start, bytes.Count - start);
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
            }
        }
        return [System.Text.Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

/// <summary>&lt;0xNN&gt; tokens become bytes; an invalid UTF-8 run becomes one U+FFFD per byte.</summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    public override byte[]? RawBytes(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>' &&
        byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b) ? [b] : null;

    public override List<string> DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var pending = new List<byte>();
        void Flush()
        {
            if (pending.Count == 0) return;
            var array = pending.ToArray();
            try
            {
                output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(array));
            }
            catch (DecoderFallbackException)
            {
                for (var i = 0; i < array.Length; i++) output.Add("\uFFFD");
            }
            pending.Clear();
        }
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>' &&
                byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
            {
                pending.Add(b);
                continue;
            }
            Flush();
            output.Add(token);
        }
        Flush();
        return output;
    }
}

internal sealed class FuseDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

internal sealed class StripDecoder(string content, int start, int stop) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var c = content.Length == 1 ? content[0] : throw new OspreyException($"tokenizer.json Strip decoder content must be one char, got '{content}'.");
        var output = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            var s = 0;
            while (s < start && s < token.Length && token[s] == c) s++;
            var e = token.Length;
            var removed = 0;
            while (removed < stop && e > s && token[e - 1] == c)
            {
                e--;
                removed++;
            }
            output.Add(token[s..e]);
        }
        return output;
    }
}

internal sealed class ReplaceDecoder(SplitPattern pattern, string content) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            var matches = pattern.Find(token);
            if (matches.Count == 0)
            {
                output.Add(token);
                continue;
            }
            var sb = new StringBuilder(token.Length);
            var previous = 0;
            foreach (var (s, e) in matches)
            {
                sb.Append(token, previous, s - previous).Append(content);
                previous = e;
            }
            sb.Append(token, previous, token.Length - previous);
            output.Add(sb.ToString());
        }
        return output;
    }
}

internal sealed class MetaspaceDecoder(char replacement, bool prepended) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var s = tokens[i].Replace(replacement, ' ');
            if (i == 0 && prepended && s.StartsWith(' ')) s = s[1..];
            output.Add(s);
        }
        return output;
    }
}

internal sealed class BpeSuffixDecoder(string suffix) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            output.Add(tokens[i].Replace(suffix, i == tokens.Count - 1 ? "" : " "));
        }
        return output;
    }
}

internal sealed class WordPieceDecoder(string prefix, bool cleanup) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (i != 0)
            {
                t = t.StartsWith(prefix, StringComparison.Ordinal) ? t[prefix.Length..] : " " + t;
            }
            if (cleanup) t = Tokenizer.CleanUpTokenization(t);
            output.Add(t);
        }
        return output;
    }
}

/// <summary>GPT-2's reversible byte ↔ printable-char table.</summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = new char[256];
    private static readonly int[] s_charToByte = new int[512];

    static ByteLevelAlphabet()
    {
        Array.Fill(s_charToByte, -1);
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            var c = printable ? (char)b : (char)(256 + n++);
            s_byteToChar[b] = c;
            s_charToByte[c] = b;
        }
    }

    public static char ByteToChar(byte b) => s_byteToChar[b];

    public static int CharToByte(char c) => c < 512 ? s_charToByte[c] : -1;
}
