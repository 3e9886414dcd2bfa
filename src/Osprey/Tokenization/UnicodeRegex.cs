using System.Globalization;
using System.Text.RegularExpressions;

namespace Osprey.Tokenization;

/// <summary>
/// A pre-tokenizer regular expression evaluated per Unicode code point, as the Oniguruma engine behind HF tokenizers
/// does. .NET regexes see UTF-16 units, so a letter outside the BMP (𝐀, 𠀀) would not match <c>\p{L}</c>; texts
/// holding surrogate pairs are therefore matched on a stand-in string where each such code point becomes one BMP
/// char of the same Unicode category, and the match spans are mapped back.
/// </summary>
internal sealed class UnicodeRegex
{
    private static readonly char[] s_standIns = BuildStandIns();
    private readonly ThreadLocal<Regex> _regex;

    public UnicodeRegex(string pattern)
    {
        Pattern = pattern;
        Regex first;
        try
        {
            first = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new OspreyException($"tokenizer.json has a regular expression .NET cannot compile ({e.Message}): {pattern}");
        }
        // One instance per thread: a Regex hands its single cached matcher to one caller at a time and builds a new
        // one for every concurrent caller, which made multi-threaded encoding allocate on every piece.
        var handedOut = 0;
        _regex = new ThreadLocal<Regex>(() => Interlocked.Exchange(ref handedOut, 1) == 0
            ? first
            : new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant));
    }

    public string Pattern { get; }

    /// <summary>Adds every non-empty match of the text as UTF-16 [start, end).</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int, int)> output)
    {
        var hasSurrogates = text.IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;
        if (!hasSurrogates)
        {
            foreach (var m in _regex.Value!.EnumerateMatches(text))
            {
                if (m.Length > 0) output.Add((m.Index, m.Index + m.Length));
            }
            return;
        }
        // One stand-in char per code point; utf16Index[k] = where code point k starts in the text.
        var standIn = new char[text.Length];
        var utf16Index = new int[text.Length + 1];
        var n = 0;
        for (var i = 0; i < text.Length; i++)
        {
            utf16Index[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var cp = char.ConvertToUtf32(text[i], text[i + 1]);
                standIn[n++] = s_standIns[(int)CharUnicodeInfo.GetUnicodeCategory(cp)];
                i++;
            }
            else
            {
                standIn[n++] = text[i];
            }
        }
        utf16Index[n] = text.Length;
        foreach (var m in _regex.Value!.EnumerateMatches(new ReadOnlySpan<char>(standIn, 0, n)))
        {
            if (m.Length > 0) output.Add((utf16Index[m.Index], utf16Index[m.Index + m.Length]));
        }
    }

    /// <summary>For each Unicode category, a BMP char of that category outside the ranges real tokenizer patterns name.</summary>
    private static char[] BuildStandIns()
    {
        var map = new Dictionary<UnicodeCategory, char>
        {
            [UnicodeCategory.UppercaseLetter] = '\u00C0',
            [UnicodeCategory.LowercaseLetter] = '\u00DF',
            [UnicodeCategory.TitlecaseLetter] = '\u01C5',
            [UnicodeCategory.ModifierLetter] = '\u02B0',
            [UnicodeCategory.OtherLetter] = '\u00AA',
            [UnicodeCategory.NonSpacingMark] = '\u0300',
            [UnicodeCategory.SpacingCombiningMark] = '\u0903',
            [UnicodeCategory.EnclosingMark] = '\u20DD',
            [UnicodeCategory.DecimalDigitNumber] = '\u0660',
            [UnicodeCategory.LetterNumber] = '\u2160',
            [UnicodeCategory.OtherNumber] = '\u00B2',
            [UnicodeCategory.SpaceSeparator] = '\u2002',
            [UnicodeCategory.LineSeparator] = '\u2028',
            [UnicodeCategory.ParagraphSeparator] = '\u2029',
            [UnicodeCategory.Control] = '\u0085',
            [UnicodeCategory.Format] = '\u00AD',
            [UnicodeCategory.Surrogate] = '\uD800',
            [UnicodeCategory.PrivateUse] = '\uE000',
            [UnicodeCategory.ConnectorPunctuation] = '\u203F',
            [UnicodeCategory.DashPunctuation] = '\u2010',
            [UnicodeCategory.OpenPunctuation] = '\u2045',
            [UnicodeCategory.ClosePunctuation] = '\u2046',
            [UnicodeCategory.InitialQuotePunctuation] = '\u00AB',
            [UnicodeCategory.FinalQuotePunctuation] = '\u00BB',
            [UnicodeCategory.OtherPunctuation] = '\u00A1',
            [UnicodeCategory.MathSymbol] = '\u00AC',
            [UnicodeCategory.CurrencySymbol] = '\u00A2',
            [UnicodeCategory.ModifierSymbol] = '\u00B4',
            [UnicodeCategory.OtherSymbol] = '\u00A6',
            [UnicodeCategory.OtherNotAssigned] = '\u0378',
        };
        var table = new char[32];
        foreach (var (category, c) in map)
        {
            if (CharUnicodeInfo.GetUnicodeCategory(c) != category)
                throw new InvalidOperationException($"stand-in U+{(int)c:X4} is not {category}");
            table[(int)category] = c;
        }
        return table;
    }
}
