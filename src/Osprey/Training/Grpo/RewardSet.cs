using Osprey.Models;

namespace Osprey.Training.Grpo;

/// <summary>
/// The rewards of a GRPO run in <c>--reward_weights</c> order — <c>--reward_funcs</c> (built-ins, then plugin names),
/// then <c>--reward_url</c>, then <c>--reward_model</c> — and their weights; scores a batch into one column per reward.
/// </summary>
internal sealed class RewardSet : IDisposable
{
    RewardSet(List<IRewardFunction> functions, double[] weights)
    {
        Functions = functions;
        Weights = weights;
    }

    /// <summary>The reward functions.</summary>
    public IReadOnlyList<IRewardFunction> Functions { get; }

    /// <summary>One weight per function.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>Builds the rewards <paramref name="o"/> names; a reward model loads with <paramref name="load"/>.</summary>
    /// <exception cref="OspreyException">A name is neither built in nor in a plugin.</exception>
    public static RewardSet Create(GrpoOptions o, ModelLoadOptions load)
    {
        var plugins = RewardPlugins.Load(o.ExternalPlugins);
        var functions = new List<IRewardFunction>();
        try
        {
            foreach (var name in o.RewardFuncs)
                functions.Add(BuiltInRewards.Create(name, o) ?? (plugins.TryGetValue(name, out var p) ? p
                    : throw new OspreyException($"--reward_funcs {name} is not a reward: use {string.Join(", ", BuiltInRewards.Names)}{(plugins.Count > 0 ? ", or a plugin's " + string.Join(", ", plugins.Keys) : ", or load one with --external_plugins my.dll")}.")));
            if (o.RewardUrl is { } url) functions.Add(new HttpReward(url, TimeSpan.FromMinutes(5)));
            if (o.RewardModel is { } rm) functions.Add(new ModelReward(Hub.HubCache.ResolveModel(rm), load));
        }
        catch
        {
            foreach (var f in functions) (f as IDisposable)?.Dispose();
            throw;
        }
        var weights = o.ParsedRewardWeights.Count > 0 ? o.ParsedRewardWeights.ToArray() : Enumerable.Repeat(1.0, functions.Count).ToArray();
        return new RewardSet(functions, weights);
    }

    /// <summary>Rewards [function][completion]; NaN where a function does not apply.</summary>
    public double[][] Score(IReadOnlyList<RewardInput> batch) => Functions.Select(f =>
    {
        var scores = f.Score(batch);
        if (scores.Count != batch.Count) throw new OspreyException($"the reward function {f.Name} returned {scores.Count} rewards for {batch.Count} completions; it must return one per completion.");
        return scores.ToArray();
    }).ToArray();

    /// <summary>Each completion's weighted sum of <paramref name="perFunction"/>, NaNs counting 0 (TRL's nansum).</summary>
    public double[] Total(double[][] perFunction)
    {
        var n = perFunction.Length == 0 ? 0 : perFunction[0].Length;
        var total = new double[n];
        for (var f = 0; f < perFunction.Length; f++)
            for (var i = 0; i < n; i++)
                if (!double.IsNaN(perFunction[f][i])) total[i] += Weights[f] * perFunction[f][i];
        return total;
    }

    public void Dispose()
    {
        foreach (var f in Functions) (f as IDisposable)?.Dispose();
    }
}
