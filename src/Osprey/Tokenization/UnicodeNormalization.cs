using System.IO.Compression;
using System.Text;

namespace Osprey.Tokenization;

/// <summary>The four Unicode normalization forms.</summary>
internal enum NormForm { C, D, KC, KD }

/// <summary>
/// Unicode normalization (NFC/NFD/NFKC/NFKD) from embedded Unicode data (tools/make_unicode_tables.py), because
/// .NET's own normalization needs ICU and Osprey runs with invariant globalization.
/// </summary>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> s_tables = new(Load);

    private sealed class Tables
    {
        public readonly Dictionary<int, byte> Ccc = new();
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compat = new();
        public readonly Dictionary<long, int> Compose = new();
        public readonly HashSet<int> ComposingStarters = new();
        public string Version = "";

        /// <summary>Per form, BMP chars that normalization leaves alone whatever surrounds them.</summary>
        public readonly bool[][] Stable = new bool[4][];
    }

    /// <summary>The Unicode version of the embedded data.</summary>
    public static string UnicodeVersion => s_tables.Value.Version;

    private static Tables Load()
    {
        using var stream = typeof(UnicodeNormalization).Assembly.GetManifestResourceStream("Osprey.Tokenization.unicode-norm.bin")
            ?? throw new InvalidOperationException("embedded resource unicode-norm.bin is missing from Osprey.Core");
        using var deflate = new DeflateStream(stream, CompressionMode.Decompress);
        using var reader = new BinaryReader(deflate);
        if (System.Text.Encoding.ASCII.GetString(reader.ReadBytes(4)) != "ONRM" || reader.ReadByte() != 1)
            throw new InvalidOperationException("embedded unicode-norm.bin has an unknown format");
        var t = new Tables { Version = System.Text.Encoding.ASCII.GetString(reader.ReadBytes(reader.ReadByte())) };
        var nCcc = reader.ReadUInt32();
        for (var i = 0; i < nCcc; i++) t.Ccc[(int)reader.ReadUInt32()] = reader.ReadByte();
        var nDecomp = reader.ReadUInt32();
        for (var i = 0; i < nDecomp; i++)
        {
            var cp = (int)reader.ReadUInt32();
            var flags = reader.ReadByte();
            var seq = new int[reader.ReadByte()];
            for (var j = 0; j < seq.Length; j++) seq[j] = (int)reader.ReadUInt32();
            if ((flags & 1) != 0) t.Compat[cp] = seq;
            else t.Canonical[cp] = seq;
            if ((flags & 2) != 0)
            {
                t.Compose[((long)seq[0] << 21) | (uint)seq[1]] = cp;
                if (!t.Ccc.ContainsKey(seq[1])) t.ComposingStarters.Add(seq[1]);
            }
        }
        // Hangul vowel and trailing jamo compose with what precedes them.
        for (var v = VBase; v < VBase + VCount; v++) t.ComposingStarters.Add(v);
        for (var c = TBase + 1; c < TBase + TCount; c++) t.ComposingStarters.Add(c);
        foreach (var form in Enum.GetValues<NormForm>())
        {
            var stable = new bool[65536];
            var compat = form is NormForm.KC or NormForm.KD;
            var composes = form is NormForm.C or NormForm.KC;
            for (var c = 0; c < 65536; c++)
            {
                if (c is >= 0xD800 and <= 0xDFFF) continue;
                if (t.Ccc.ContainsKey(c) || t.Canonical.ContainsKey(c) || (compat && t.Compat.ContainsKey(c))) continue;
                if (c is >= SBase and < SBase + SCount && !composes) continue;
                // A starter that composes with what precedes it, or a leading jamo that composes with what follows.
                if (composes && (t.ComposingStarters.Contains(c) || c is >= LBase and < LBase + LCount)) continue;
                stable[c] = true;
            }
            t.Stable[(int)form] = stable;
        }
        return t;
    }

    /// <summary>The canonical combining class of a code point.</summary>
    public static int CombiningClass(int cp) => s_tables.Value.Ccc.TryGetValue(cp, out var c) ? c : 0;

    /// <summary>
    /// True when a normalization chunk may start at this code point: a starter that cannot compose with what
    /// precedes it. Normalizing chunk by chunk then equals normalizing the whole text.
    /// </summary>
    public static bool IsChunkStart(int cp, NormForm form)
    {
        if (cp < 0x300) return true;
        var t = s_tables.Value;
        if (t.Ccc.ContainsKey(cp) || t.ComposingStarters.Contains(cp)) return false;
        // A starter whose decomposition begins with a non-starter (halfwidth voiced marks under NFKC) also interacts.
        var compat = form is NormForm.KC or NormForm.KD;
        while (t.Canonical.TryGetValue(cp, out var seq) || (compat && t.Compat.TryGetValue(cp, out seq)))
        {
            cp = seq[0];
            if (t.Ccc.ContainsKey(cp) || t.ComposingStarters.Contains(cp)) return false;
        }
        return true;
    }

    /// <summary>True when the text certainly does not change under the form (a cheap conservative check).</summary>
    public static bool IsTriviallyNormalized(ReadOnlySpan<char> text, NormForm form)
    {
        var limit = form is NormForm.C or NormForm.D ? '\u0300' : '\u00A0';
        var i = text.IndexOfAnyInRange(limit, '\uFFFF');
        if (i < 0) return true;
        var stable = s_tables.Value.Stable[(int)form];
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (c < limit) continue;
            if (char.IsSurrogate(c)) return false;
            if (!stable[c]) return false;
        }
        return true;
    }

    /// <summary>Normalizes text to the form.</summary>
    public static string Normalize(ReadOnlySpan<char> text, NormForm form)
    {
        if (IsTriviallyNormalized(text, form)) return text.ToString();
        var t = s_tables.Value;
        var compat = form is NormForm.KC or NormForm.KD;
        var cps = new List<int>(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(text[i], text[i + 1]);
                i++;
            }
            Decompose(t, cp, compat, cps);
        }
        // Canonical ordering: stable-sort each run of non-starters by combining class.
        for (var i = 1; i < cps.Count; i++)
        {
            var c = Ccc(t, cps[i]);
            if (c == 0) continue;
            var j = i;
            while (j > 0 && Ccc(t, cps[j - 1]) > c)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
        if (form is NormForm.C or NormForm.KC) Compose(t, cps);
        var sb = new StringBuilder(cps.Count + 4);
        foreach (var cp in cps) sb.Append(char.ConvertFromUtf32(cp is >= 0xD800 and <= 0xDFFF ? 0xFFFD : cp));
        return sb.ToString();
    }

    private static int Ccc(Tables t, int cp) => t.Ccc.TryGetValue(cp, out var c) ? c : 0;

    private static void Decompose(Tables t, int cp, bool compat, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            var s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (t.Canonical.TryGetValue(cp, out var seq) || (compat && t.Compat.TryGetValue(cp, out seq)))
        {
            foreach (var s in seq) Decompose(t, s, compat, output);
            return;
        }
        output.Add(cp);
    }

    private static void Compose(Tables t, List<int> cps)
    {
        if (cps.Count < 2) return;
        var starter = -1;
        var write = 0;
        for (var read = 0; read < cps.Count; read++)
        {
            var cp = cps[read];
            var ccc = Ccc(t, cp);
            if (starter >= 0)
            {
                // Not blocked: nothing kept since the starter, or the last kept char has a lower, non-zero class.
                var previous = Ccc(t, cps[write - 1]);
                var notBlocked = write - 1 == starter || (previous != 0 && previous < ccc);
                if (notBlocked && TryCompose(t, cps[starter], cp, out var composite))
                {
                    cps[starter] = composite;
                    continue;
                }
            }
            if (ccc == 0) starter = write;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(Tables t, int a, int b, out int composite)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
        {
            composite = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
            return true;
        }
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
        {
            composite = a + (b - TBase);
            return true;
        }
        return t.Compose.TryGetValue(((long)a << 21) | (uint)b, out composite);
    }
}
