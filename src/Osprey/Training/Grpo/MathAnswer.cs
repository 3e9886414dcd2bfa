using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace Osprey.Training.Grpo;

/// <summary>
/// Math answer checking for the accuracy reward: pulls the final answer out of a completion (the last
/// <c>\boxed{…}</c>, else the <c>&lt;answer&gt;</c> block, else the last number), normalises LaTeX (<c>$</c>,
/// <c>\left/\right</c>, <c>\dfrac</c>/<c>\tfrac</c>, <c>\text{…}</c>, spacing commands, degrees, percent, thousands
/// separators, a leading <c>x =</c>) and compares numerically when both sides are numbers (integers, decimals, a/b,
/// <c>\frac{a}{b}</c>, exactly as rationals), else as normalised strings.
/// </summary>
internal static partial class MathAnswer
{
    /// <summary>The final answer a completion gives (see the class remarks); the whole text when it marks none.</summary>
    public static string ExtractAnswer(string text)
    {
        if (LastBoxed(text) is { } boxed) return boxed;
        var tag = AnswerTag().Matches(text);
        if (tag.Count > 0) return LastBoxed(tag[^1].Groups[1].Value) ?? tag[^1].Groups[1].Value;
        var numbers = NumberPattern().Matches(text);
        return numbers.Count > 0 ? numbers[^1].Value : text;
    }

    /// <summary>The reference answer of a <c>solution</c> column: its last <c>\boxed{…}</c>, else the whole text.</summary>
    public static string ExtractSolution(string solution) => LastBoxed(solution) ?? solution;

    /// <summary>True when <paramref name="answer"/> and <paramref name="gold"/> (already extracted) denote the same value.</summary>
    public static bool Equivalent(string answer, string gold)
    {
        var a = Normalize(answer);
        var g = Normalize(gold);
        if (g.Length == 0) return false;
        if (TryRational(a, out var ra) && TryRational(g, out var rg)) return ra.Num * rg.Den == rg.Num * ra.Den;
        return Unbraced(a) == Unbraced(g);
    }

    /// <summary>The contents of the last <c>\boxed{…}</c> (or <c>\fbox{…}</c>), braces balanced; null when there is none.</summary>
    public static string? LastBoxed(string text)
    {
        var at = Math.Max(text.LastIndexOf("\\boxed", StringComparison.Ordinal), text.LastIndexOf("\\fbox", StringComparison.Ordinal));
        if (at < 0) return null;
        var open = text.IndexOf('{', at);
        if (open < 0) return null;
        var depth = 0;
        for (var i = open; i < text.Length; i++)
        {
            if (text[i] == '{') depth++;
            else if (text[i] == '}' && --depth == 0) return text[(open + 1)..i];
        }
        return null;
    }

    /// <summary>The canonical text of an answer (see the class remarks).</summary>
    public static string Normalize(string s)
    {
        s = s.Trim();
        s = TextCommand().Replace(s, "$1");
        foreach (var drop in new[] { "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "$", "^{\\circ}", "^\\circ", "\\circ", "\\%", "%", "\\displaystyle" })
            s = s.Replace(drop, "", StringComparison.Ordinal);
        s = s.Replace("\\dfrac", "\\frac", StringComparison.Ordinal).Replace("\\tfrac", "\\frac", StringComparison.Ordinal);
        s = Whitespace().Replace(s, "");
        s = s.TrimEnd('.');
        s = Assignment().Replace(s, "");
        if (Thousands().IsMatch(s)) s = s.Replace(",", "", StringComparison.Ordinal);
        return s;
    }

    static string Unbraced(string s) => s.Replace("{", "", StringComparison.Ordinal).Replace("}", "", StringComparison.Ordinal);

    /// <summary>Reads an integer, a decimal, a/b, or \frac{a}{b} (\frac ab with single digits), each optionally negative, as an exact fraction.</summary>
    static bool TryRational(string s, out (BigInteger Num, BigInteger Den) value)
    {
        value = default;
        var negative = false;
        if (s.StartsWith('-')) { negative = true; s = s[1..]; }
        else if (s.StartsWith('+')) s = s[1..];
        if (s.StartsWith('(') && s.EndsWith(')')) s = s[1..^1];
        (BigInteger, BigInteger) r;
        var frac = Frac().Match(s);
        if (frac.Success)
        {
            if (!TryDecimal(frac.Groups[1].Value + frac.Groups[2].Value, out var n) || !TryDecimal(frac.Groups[3].Value + frac.Groups[4].Value, out var d) || d.Num.IsZero) return false;
            r = (n.Num * d.Den, n.Den * d.Num);
        }
        else if (s.Split('/') is [var top, var bottom])
        {
            if (!TryDecimal(top, out var n) || !TryDecimal(bottom, out var d) || d.Num.IsZero) return false;
            r = (n.Num * d.Den, n.Den * d.Num);
        }
        else if (!TryDecimal(s, out var v)) return false;
        else r = v;
        if (r.Item2.Sign < 0) r = (-r.Item1, -r.Item2);
        value = negative ? (-r.Item1, r.Item2) : r;
        return true;
    }

    static bool TryDecimal(string s, out (BigInteger Num, BigInteger Den) value)
    {
        value = default;
        var negative = s.StartsWith('-');
        if (negative) s = s[1..];
        if (!DecimalPattern().IsMatch(s)) return false;
        var dot = s.IndexOf('.');
        var digits = dot < 0 ? s : s.Remove(dot, 1);
        var den = dot < 0 ? BigInteger.One : BigInteger.Pow(10, s.Length - dot - 1);
        var num = BigInteger.Parse(digits.Length == 0 ? "0" : digits, CultureInfo.InvariantCulture);
        value = (negative ? -num : num, den);
        return true;
    }

    [GeneratedRegex(@"<answer>(.*?)</answer>", RegexOptions.Singleline)]
    private static partial Regex AnswerTag();

    // ASCII digits only: .NET's \d also matches other scripts' digits, which BigInteger.Parse refuses (a random-weight
    // model on the H100 wrote one and the accuracy reward crashed the run).
    [GeneratedRegex(@"-?[0-9][0-9,]*(?:\.[0-9]+)?(?:/[0-9]+)?")]
    private static partial Regex NumberPattern();

    [GeneratedRegex(@"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")]
    private static partial Regex TextCommand();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"^[a-zA-Z]\w*=(?=.)")]
    private static partial Regex Assignment();

    [GeneratedRegex(@"^-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$")]
    private static partial Regex Thousands();

    [GeneratedRegex(@"^\\frac(?:\{(-?[0-9.]+)\}|([0-9]))(?:\{(-?[0-9.]+)\}|([0-9]))$")]
    private static partial Regex Frac();

    [GeneratedRegex(@"^([0-9]+\.?[0-9]*|\.[0-9]+)$")]
    private static partial Regex DecimalPattern();
}
