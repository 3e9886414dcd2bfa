using System.Text.Json.Nodes;
using Osprey.Training.Grpo;

namespace Osprey.Tests.Training.Grpo;

/// <summary>
/// The built-in rewards and GRPO's group advantages against hand-computed values: math answer extraction and
/// normalisation (fractions, \frac/\dfrac, \boxed, $…$, thousands separators, units, x = …), the think/answer format,
/// the cosine length curve, n-gram repetition, DAPO's soft overlong penalty, and (r − mean)/(std + 1e-4).
/// </summary>
public sealed class GrpoRewardTests
{
    static RewardInput Input(string completion, string? solution = null, int tokens = 10, bool truncated = false)
    {
        var row = new JsonObject();
        if (solution is not null) row["solution"] = solution;
        return new RewardInput(completion, [], row, tokens, truncated);
    }

    static double One(string name, RewardInput input, GrpoOptions? o = null) =>
        BuiltInRewards.Create(name, o ?? new GrpoOptions { SoftCacheLength = 20, MaxCompletionLength = 100 })!.Score([input])[0];

    [Theory]
    [InlineData("The answer is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}", 1)]
    [InlineData("so \\boxed{0.75}", "\\dfrac{3}{4}", 1)]
    [InlineData("so \\boxed{3/4}", "$\\frac34$", 1)]
    [InlineData("<answer>42</answer>", "\\boxed{42}", 1)]
    [InlineData("6 times 7 makes 42.", "42", 1)]
    [InlineData("it is 41", "42", 0)]
    [InlineData("\\boxed{1,000}", "1000", 1)]
    [InlineData("\\boxed{x = 5}", "5", 1)]
    [InlineData("\\boxed{5\\text{ cm}}", "5 cm", 1)]
    [InlineData("\\boxed{-\\frac{1}{2}}", "-0.5", 1)]
    [InlineData("\\boxed{\\left(1, 2\\right)}", "(1,2)", 1)]
    [InlineData("\\boxed{90^\\circ}", "90", 1)]
    [InlineData("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", 1)]
    [InlineData("\\boxed{\\sqrt{2}}", "\\sqrt{3}", 0)]
    [InlineData("first \\boxed{1} then \\boxed{2}", "2", 1)]
    [InlineData("no number at all", "7", 0)]
    // Digits of other scripts are not numbers here (a random model's completion once crashed the reward with one).
    [InlineData("\\boxed{\u0663}", "3", 0)]
    [InlineData("so \u0664\u0662 then", "42", 0)]
    [InlineData("\\boxed{\\frac{\u0661}{2}}", "0.5", 0)]
    public void AccuracyNormalisesAnswers(string completion, string solution, double expected) =>
        Assert.Equal(expected, One("accuracy", Input(completion, solution)));

    [Fact]
    public void AccuracyWithoutASolutionColumnNamesIt()
    {
        var e = Assert.Throws<OspreyException>(() => One("accuracy", Input("1")));
        Assert.Contains("\"solution\" column", e.Message);
    }

    [Theory]
    [InlineData("<think>a\nb</think>\n<answer>4</answer>", 1)]
    [InlineData("<think>x</think><answer>4</answer>", 1)]
    [InlineData("<think>x</think> <answer>4</answer> trailing", 0)]
    [InlineData("lead <think>x</think><answer>4</answer>", 0)]
    [InlineData("<answer>4</answer>", 0)]
    public void FormatMatchesTheThinkAnswerLayout(string completion, double expected) =>
        Assert.Equal(expected, One("format", Input(completion)));

    [Fact]
    public void CosineScalesByLength()
    {
        var o = new GrpoOptions { MaxCompletionLength = 100 };
        // Right: 1.0 at length 0, 0.5 at 100; halfway 0.75. Wrong: −0.5 at 0, 0 at 100; halfway −0.25.
        Assert.Equal(1.0, One("cosine", Input("\\boxed{3}", "3", tokens: 0), o), 12);
        Assert.Equal(0.75, One("cosine", Input("\\boxed{3}", "3", tokens: 50), o), 12);
        Assert.Equal(0.5, One("cosine", Input("\\boxed{3}", "3", tokens: 100), o), 12);
        Assert.Equal(-0.5, One("cosine", Input("\\boxed{4}", "3", tokens: 0), o), 12);
        Assert.Equal(-0.25, One("cosine", Input("\\boxed{4}", "3", tokens: 50), o), 12);
        // A quarter of the way: 0.5 + 0.25 (1 + cos(π/4)) for a right answer.
        Assert.Equal(0.5 + 0.25 * (1 + Math.Sqrt(0.5)), One("cosine", Input("\\boxed{3}", "3", tokens: 25), o), 12);
    }

    [Fact]
    public void RepetitionPenalisesRepeatedNGrams()
    {
        // "a b a b a b": trigrams aba, bab, aba, bab → 2 distinct of 4 → (1 − 0.5) × −1.
        Assert.Equal(-0.5, One("repetition", Input("a b a b a b")), 12);
        Assert.Equal(0.0, One("repetition", Input("one two three four")), 12);
        Assert.Equal(0.0, One("repetition", Input("too short")), 12);
        // Case-insensitive: "A b c a B c" → abc, bca, cab, abc → 3 of 4 distinct → −0.25.
        Assert.Equal(-0.25, One("repetition", Input("A b c a B c")), 12);
    }

    [Fact]
    public void SoftOverlongRampsInTheCacheBand()
    {
        // L_max 100, cache 20: no penalty to 80 tokens, then −(len − 80)/20.
        Assert.Equal(0.0, One("soft_overlong", Input("x", tokens: 80)), 12);
        Assert.Equal(0.0, One("soft_overlong", Input("x", tokens: 10)), 12);
        Assert.Equal(-0.25, One("soft_overlong", Input("x", tokens: 85)), 12);
        Assert.Equal(-1.0, One("soft_overlong", Input("x", tokens: 100)), 12);
    }

    [Fact]
    public void GroupAdvantagesScaleByGroupBatchOrNothing()
    {
        double[] r = [1, 0, 0, 1, 2, 2, 2, 2];
        // Group 1: mean 0.5, sample std sqrt(1/3); group 2: no spread.
        var s = Math.Sqrt(1.0 / 3);
        var (a, zero) = GroupAdvantages.Compute(r, 4, RewardScaling.Group);
        Assert.Equal([false, true], zero);
        Assert.Equal(0.5 / (s + 1e-4), a[0], 12);
        Assert.Equal(-0.5 / (s + 1e-4), a[1], 12);
        Assert.Equal(0.0, a[4], 12);
        var (none, _) = GroupAdvantages.Compute(r, 4, RewardScaling.None);
        Assert.Equal(0.5, none[0], 12);
        // Batch: mean 1.25, sum of squares 0.0625·2 + 1.5625·2 + 0.5625·4 = 5.5 → std sqrt(5.5/7).
        var (batch, _) = GroupAdvantages.Compute(r, 4, RewardScaling.Batch);
        Assert.Equal(0.5 / (Math.Sqrt(5.5 / 7) + 1e-4), batch[0], 12);
    }
}
