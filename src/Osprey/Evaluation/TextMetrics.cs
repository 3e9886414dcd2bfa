using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// Sentence-level BLEU and ROUGE between a prediction and one reference, as EvalScope reports them for general_qa:
/// bleu-1 … bleu-4 (Papineni et al.: the clipped n-gram precision of that order times the brevity penalty, no
/// smoothing) and rouge-1, rouge-2, rouge-l F1 (Lin 2004: n-gram and longest-common-subsequence overlap).
/// Text is lower-cased and split into words; each Chinese, Japanese or Korean character is a word of its own.
/// </summary>
public static partial class TextMetrics
{
    [GeneratedRegex(@"[\p{IsCJKUnifiedIdeographs}\p{IsHiragana}\p{IsKatakana}\p{IsHangulSyllables}]|[\p{L}\p{N}_]+")]
    private static partial Regex Word();

    /// <summary>The metric names, in report order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["bleu-1", "bleu-2", "bleu-3", "bleu-4", "rouge-1-f", "rouge-2-f", "rouge-l-f"];

    /// <summary>The words of <paramref name="text"/>.</summary>
    public static IReadOnlyList<string> Words(string text) => Word().Matches(text.ToLowerInvariant()).Select(m => m.Value).ToList();

    /// <summary>Every metric of <see cref="Names"/> for <paramref name="prediction"/> against <paramref name="reference"/>.</summary>
    public static IReadOnlyDictionary<string, double> Score(string prediction, string reference)
    {
        var c = Words(prediction);
        var r = Words(reference);
        var scores = new Dictionary<string, double>();
        var bp = c.Count == 0 ? 0 : c.Count > r.Count ? 1 : Math.Exp(1 - (double)r.Count / c.Count);
        for (var n = 1; n <= 4; n++)
        {
            var cand = Grams(c, n);
            var total = cand.Values.Sum();
            scores[$"bleu-{n}"] = total == 0 ? 0 : bp * Overlap(cand, Grams(r, n)) / total;
        }
        for (var n = 1; n <= 2; n++)
        {
            var (cg, rg) = (Grams(c, n), Grams(r, n));
            scores[$"rouge-{n}-f"] = F1(Overlap(cg, rg), cg.Values.Sum(), rg.Values.Sum());
        }
        scores["rouge-l-f"] = F1(Lcs(c, r), c.Count, r.Count);
        return scores;
    }

    static double F1(double overlap, double predicted, double reference)
    {
        if (overlap == 0 || predicted == 0 || reference == 0) return 0;
        double p = overlap / predicted, rc = overlap / reference;
        return 2 * p * rc / (p + rc);
    }

    static Dictionary<string, int> Grams(IReadOnlyList<string> words, int n)
    {
        var grams = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i + n <= words.Count; i++)
        {
            var key = string.Join('\u0001', words.Skip(i).Take(n));
            grams[key] = grams.GetValueOrDefault(key) + 1;
        }
        return grams;
    }

    static int Overlap(Dictionary<string, int> candidate, Dictionary<string, int> reference) =>
        candidate.Sum(g => Math.Min(g.Value, reference.GetValueOrDefault(g.Key)));

    static int Lcs(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var row = new int[b.Count + 1];
        for (var i = 1; i <= a.Count; i++)
        {
            var diagonal = 0;
            for (var j = 1; j <= b.Count; j++)
            {
                var above = row[j];
                row[j] = a[i - 1] == b[j - 1] ? diagonal + 1 : Math.Max(row[j], row[j - 1]);
                diagonal = above;
            }
        }
        return row[b.Count];
    }
}
