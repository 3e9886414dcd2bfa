namespace Osprey.Training.Grpo;

/// <summary>
/// The endless stream of prompt indices GRPO and PPO draw their generation batches from: epoch after epoch over the
/// prompts, each epoch in its own Fisher–Yates order seeded by (run seed, epoch). A position in the stream therefore
/// names the same prompt in an uninterrupted and a resumed run, so the recipes' state only has to keep a cursor.
/// </summary>
internal sealed class PromptOrder(int count, int seed)
{
    readonly Dictionary<long, int[]> _orders = [];

    /// <summary>The prompt at <paramref name="position"/> of the stream (0-based, over all epochs).</summary>
    public int At(long position)
    {
        var epoch = position / count;
        if (!_orders.TryGetValue(epoch, out var order))
        {
            order = Shuffled(count, unchecked(seed * 7919 + (int)epoch));
            _orders[epoch] = order;
        }
        return order[(int)(position % count)];
    }

    /// <summary>The <paramref name="n"/> prompts from stream position <paramref name="from"/> on.</summary>
    public List<int> Take(long from, int n)
    {
        var prompts = new List<int>(n);
        for (var i = 0; i < n; i++) prompts.Add(At(from + i));
        return prompts;
    }

    /// <summary>0..n-1 in a Fisher–Yates order drawn from <paramref name="seed"/> (prompt epochs here, PPO's mini-batches).</summary>
    public static int[] Shuffled(int n, int seed)
    {
        var order = Enumerable.Range(0, n).ToArray();
        var rng = new Random(seed);
        for (var i = n - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
