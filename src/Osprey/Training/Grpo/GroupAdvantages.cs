namespace Osprey.Training.Grpo;

/// <summary>
/// GRPO's advantages: each completion's total reward minus its group's mean (a group = the G completions of one
/// prompt, consecutive), divided by the group's or the batch's sample standard deviation plus 1e-4 (<c>--scale_rewards</c>),
/// and which groups had no spread at all.
/// </summary>
internal static class GroupAdvantages
{
    /// <summary>The advantages and, per group, whether its rewards were all equal.</summary>
    public static (double[] Advantages, bool[] ZeroSpread) Compute(IReadOnlyList<double> rewards, int groupSize, RewardScaling scaling)
    {
        if (rewards.Count % groupSize != 0) throw new ArgumentException($"{rewards.Count} rewards do not split into groups of {groupSize}", nameof(rewards));
        var groups = rewards.Count / groupSize;
        var advantages = new double[rewards.Count];
        var zero = new bool[groups];
        var batchStd = Std(rewards);
        for (var g = 0; g < groups; g++)
        {
            var slice = rewards.Skip(g * groupSize).Take(groupSize).ToList();
            var mean = slice.Average();
            var std = Std(slice);
            zero[g] = std < 1e-6;
            var scale = scaling switch { RewardScaling.Group => std + 1e-4, RewardScaling.Batch => batchStd + 1e-4, _ => 1.0 };
            for (var i = 0; i < groupSize; i++) advantages[g * groupSize + i] = (slice[i] - mean) / scale;
        }
        return (advantages, zero);
    }

    /// <summary>The sample (n − 1) standard deviation, as torch.std.</summary>
    public static double Std(IReadOnlyList<double> x)
    {
        if (x.Count < 2) return 0;
        var mean = x.Average();
        return Math.Sqrt(x.Sum(v => (v - mean) * (v - mean)) / (x.Count - 1));
    }
}
