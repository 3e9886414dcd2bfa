using System.Text.RegularExpressions;

namespace Osprey.Training.Grpo;

/// <summary>
/// The rule-based rewards ms-swift ships (swift/plugin/orm.py), written from their published definitions: accuracy,
/// format, cosine, repetition and soft_overlong. <see cref="Create"/> makes one by its <c>--reward_funcs</c> name.
/// </summary>
internal static partial class BuiltInRewards
{
    /// <summary>The built-in names.</summary>
    public static readonly IReadOnlyList<string> Names = ["accuracy", "format", "cosine", "repetition", "soft_overlong"];

    /// <summary>The built-in reward <paramref name="name"/> with its parameters from <paramref name="o"/>; null for other names.</summary>
    public static IRewardFunction? Create(string name, GrpoOptions o) => name switch
    {
        "accuracy" => new Accuracy(),
        "format" => new Format(),
        "cosine" => new Cosine(o.CosineMinLenValueWrong, o.CosineMaxLenValueWrong, o.CosineMinLenValueCorrect, o.CosineMaxLenValueCorrect, o.CosineMaxLen ?? o.MaxCompletionLength),
        "repetition" => new Repetition(o.RepetitionNGrams, o.RepetitionMaxPenalty),
        "soft_overlong" => new SoftOverlong(o.SoftMaxLength ?? o.MaxCompletionLength,
            o.SoftCacheLength ?? throw new OspreyException("--reward_funcs soft_overlong needs --soft_cache_length (the band below --soft_max_length where the penalty ramps), e.g. 64.")),
        _ => null,
    };

    /// <summary>1 when the completion's final answer equals the row's <c>solution</c> (<see cref="MathAnswer"/>), else 0.</summary>
    internal static double AccuracyOf(RewardInput c)
    {
        var solution = c.Column("solution") ?? throw new OspreyException("the accuracy reward needs a \"solution\" column in every dataset row; add the reference answer (e.g. \"\\\\boxed{42}\" or \"42\").");
        return MathAnswer.Equivalent(MathAnswer.ExtractAnswer(c.Completion), MathAnswer.ExtractSolution(solution)) ? 1.0 : 0.0;
    }

    sealed class Accuracy : IRewardFunction
    {
        public string Name => "accuracy";

        public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(AccuracyOf).ToList();
    }

    sealed class Format : IRewardFunction
    {
        public string Name => "format";

        public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(c => ThinkAnswer().IsMatch(c.Completion) ? 1.0 : 0.0).ToList();
    }

    /// <summary>
    /// Cosine-scaled accuracy (Yeo et al. 2025, "Demystifying long chain-of-thought"): a right answer earns from
    /// min_len_value_correct (length 0) down to max_len_value_correct (length L), a wrong one from min_len_value_wrong up
    /// to max_len_value_wrong, along half a cosine of the completion's token count over L.
    /// </summary>
    internal sealed class Cosine(double minWrong, double maxWrong, double minCorrect, double maxCorrect, int maxLength) : IRewardFunction
    {
        public string Name => "cosine";

        public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(c =>
        {
            var correct = AccuracyOf(c) >= 1;
            var (atZero, atMax) = correct ? (minCorrect, maxCorrect) : (minWrong, maxWrong);
            var progress = Math.Min(c.CompletionTokens, maxLength) / (double)maxLength;
            return atMax + 0.5 * (atZero - atMax) * (1 + Math.Cos(progress * Math.PI));
        }).ToList();
    }

    /// <summary>N-gram repetition penalty: max_penalty × (1 − distinct n-grams / n-grams) over lower-cased whitespace words.</summary>
    internal sealed class Repetition(int n, double maxPenalty) : IRewardFunction
    {
        public string Name => "repetition";

        public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(c =>
        {
            var words = c.Completion.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < n) return 0.0;
            var grams = new HashSet<string>(StringComparer.Ordinal);
            var total = 0;
            for (var i = 0; i + n <= words.Length; i++, total++) grams.Add(string.Join('\u0001', words, i, n));
            return (1 - grams.Count / (double)total) * maxPenalty;
        }).ToList();
    }

    /// <summary>DAPO's soft overlong punishment: 0 up to L_max − L_cache tokens, then falling linearly to −1 at L_max.</summary>
    internal sealed class SoftOverlong(int maxLength, int cacheLength) : IRewardFunction
    {
        public string Name => "soft_overlong";

        public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(c =>
            Math.Min(-(c.CompletionTokens - (maxLength - cacheLength)) / (double)cacheLength, 0.0)).ToList();
    }

    [GeneratedRegex(@"\A<think>.*?</think>\s*<answer>.*?</answer>\z", RegexOptions.Singleline)]
    private static partial Regex ThinkAnswer();
}
