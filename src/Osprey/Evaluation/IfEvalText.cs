using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// The text measures IFEval's checkers count with, written after the reference implementation
/// (google-research instruction_following_eval). Words are exact: the reference's <c>RegexpTokenizer(r"\w+")</c> is
/// the same regex here (Python's <c>\w</c> and .NET's differ only on combining marks, which .NET counts as word
/// characters, and on a few numeric symbols such as ² that Python counts). Sentences and the words of
/// capital_word_frequency are approximations of nltk's Punkt and Treebank tokenizers, whose documented differences
/// are in docs/evaluation.md.
/// </summary>
public static partial class IfEvalText
{
    [GeneratedRegex(@"\w+")]
    private static partial Regex Word();

    // Treebank keeps hyphenated words whole and splits contractions (DON'T → DO N'T); splitting at apostrophes
    // gives the same number of all-capital tokens in both cases.
    [GeneratedRegex(@"\w+(?:-\w+)*")]
    private static partial Regex TreebankWord();

    // Punkt's candidates: a run of sentence-ending marks, optional closing punctuation, then whitespace and more text.
    [GeneratedRegex(@"[.?!]+[""')\]}’”]*(?=\s+\S)")]
    private static partial Regex SentenceEnd();

    // Abbreviations in nltk's English Punkt model that are common in answers; a period after one does not end a sentence.
    static readonly HashSet<string> Abbreviations = new(StringComparer.OrdinalIgnoreCase)
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp",
        "u.s", "u.k", "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "no", "gen", "gov", "sen", "rep", "lt", "col", "capt", "mt", "ft", "approx", "fig", "vol", "pp", "cf", "al",
    };

    /// <summary>Words as the reference counts them: runs of word characters.</summary>
    public static int CountWords(string text) => Word().Count(text);

    /// <summary>
    /// Sentences, approximating nltk's English Punkt tokenizer: a sentence ends at <c>.</c>, <c>?</c> or <c>!</c>
    /// (with any closing quotes or brackets) followed by whitespace and more text, unless the mark is a single period
    /// after a known abbreviation or a single letter (an initial), or an ellipsis before a word that is not
    /// capitalised; line breaks alone do not end a sentence.
    /// </summary>
    public static int CountSentences(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return 0;
        var count = 1;
        foreach (Match m in SentenceEnd().Matches(text))
        {
            if (m.Value.StartsWith("..", StringComparison.Ordinal))
            {
                // Punkt's orthographic rule for an ellipsis: it ends a sentence only before a capitalised word.
                var next = m.Index + m.Length;
                while (char.IsWhiteSpace(text[next])) next++;
                if (!char.IsUpper(text[next])) continue;
            }
            else if (m.Value.StartsWith('.'))
            {
                var start = m.Index;
                while (start > 0 && !char.IsWhiteSpace(text[start - 1])) start--;
                var token = text[start..m.Index].TrimStart('(', '"', '\'', '“', '‘', '[');
                if (Abbreviations.Contains(token) || (token.Length == 1 && char.IsLetter(token[0]))) continue;
            }
            count++;
        }
        return count;
    }

    /// <summary>Tokens that Python's <c>str.isupper()</c> calls upper case, over an approximation of nltk's word_tokenize.</summary>
    public static int CountCapitalWords(string text) => TreebankWord().Matches(text).Count(m => IsUpper(m.Value));

    /// <summary>Python's <c>str.isupper()</c>: at least one cased character, and every cased character upper case.</summary>
    public static bool IsUpper(string text) => Cased(text, upper: true);

    /// <summary>Python's <c>str.islower()</c>: at least one cased character, and every cased character lower case.</summary>
    public static bool IsLower(string text) => Cased(text, upper: false);

    static bool Cased(string text, bool upper)
    {
        var any = false;
        foreach (var c in text)
        {
            var category = char.GetUnicodeCategory(c);
            if (category == System.Globalization.UnicodeCategory.TitlecaseLetter) return false;
            if (char.IsUpper(c)) { if (!upper) return false; any = true; }
            else if (char.IsLower(c)) { if (upper) return false; any = true; }
        }
        return any;
    }
}
