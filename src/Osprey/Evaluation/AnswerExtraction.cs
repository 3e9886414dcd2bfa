using System.Globalization;
using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// Reads the answer out of a generated reply, as EvalScope's prompts ask for it: a multiple-choice letter from the
/// line <c>ANSWER: X</c> (English prompt) or <c>答案:X</c> (Chinese prompt), and a math answer from <c>ANSWER: N</c>,
/// else GSM8K's rule of the last number in the reply.
/// </summary>
public static partial class AnswerExtraction
{
    [GeneratedRegex(@"^\s*\**(?:ANSWER|答案)\**\s*[:：]\s*\**\s*\(?([A-Za-z])\)?(?![A-Za-z])", RegexOptions.IgnoreCase | RegexOptions.Multiline)]
    private static partial Regex LetterLine();

    [GeneratedRegex(@"(?:ANSWER|答案)\s*[:：]\s*\(?([A-Za-z])\)?(?![A-Za-z])", RegexOptions.IgnoreCase)]
    private static partial Regex LetterAnywhere();

    [GeneratedRegex(@"^\s*\(?([A-Za-z])\)?[.)]?\s*$")]
    private static partial Regex LetterAlone();

    [GeneratedRegex(@"ANSWER\s*[:：]\s*\$?\s*(-?[\d,]*\.?\d+)", RegexOptions.IgnoreCase)]
    private static partial Regex NumberAnswer();

    [GeneratedRegex(@"-?[\d,]*\.?\d+")]
    private static partial Regex AnyNumber();

    /// <summary>
    /// The option letter of <paramref name="reply"/> among <paramref name="letters"/>: the first line that starts
    /// with <c>ANSWER:</c>/<c>答案:</c>, else the first such phrase anywhere, else a reply that is a single letter
    /// (as <c>B</c>, <c>(B)</c>, <c>B.</c>); empty when none is found or the letter is not an option.
    /// </summary>
    public static string Letter(string reply, IReadOnlyList<string> letters)
    {
        foreach (var rule in new[] { LetterLine(), LetterAnywhere(), LetterAlone() })
        {
            var m = rule.Match(reply);
            if (!m.Success) continue;
            var letter = m.Groups[1].Value.ToUpperInvariant();
            return letters.Contains(letter) ? letter : "";
        }
        return "";
    }

    /// <summary>
    /// The final number of a math reply: the last <c>ANSWER: N</c>, else the last number anywhere (GSM8K's
    /// flexible rule), normalised by <see cref="NormalizeNumber"/>; empty when the reply has no number.
    /// </summary>
    public static string FinalNumber(string reply)
    {
        var tagged = NumberAnswer().Matches(reply);
        if (tagged.Count > 0) return NormalizeNumber(tagged[^1].Groups[1].Value);
        var any = AnyNumber().Matches(reply).Where(m => m.Value.Any(char.IsDigit)).ToList();
        return any.Count > 0 ? NormalizeNumber(any[^1].Value) : "";
    }

    /// <summary>
    /// A number as GSM8K compares it: thousands separators, a dollar sign and a trailing period removed, and a
    /// decimal written without trailing zeros (<c>1,000.50</c> → <c>1000.5</c>, <c>18.0</c> → <c>18</c>); text that
    /// is not a number comes back trimmed.
    /// </summary>
    public static string NormalizeNumber(string text)
    {
        var t = text.Trim().Replace(",", "", StringComparison.Ordinal).Replace("$", "", StringComparison.Ordinal).TrimEnd('.');
        if (!decimal.TryParse(t, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var d)) return t;
        return (d / 1.0000000000000000000000000000m).ToString(CultureInfo.InvariantCulture) switch { "-0" => "0", var s => s };
    }
}
