using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Evaluation;

/// <summary>
/// Log-likelihoods of the options of one question, computed together: the tokens all options share (the context)
/// run through the model once into a KV cache, the cache is copied to one row per option, and the options' own
/// tokens run as one right-padded batch on top of it. The result equals, per option, the sum over its continuation
/// tokens of log_softmax of the logits of the whole sequence run alone (lm-evaluation-harness's loglikelihood).
/// </summary>
public static class OptionScorer
{
    /// <summary>
    /// For each of <paramref name="sequences"/> (context followed by one option, token ids), the summed log-probability
    /// (float32 log_softmax) of its tokens from <paramref name="contextLength"/> on, each given all tokens before it.
    /// </summary>
    /// <exception cref="ArgumentException">No sequences, a sequence with no token after the context, or sequences that share no first token.</exception>
    public static double[] LogLikelihoods(CausalLM model, IReadOnlyList<int[]> sequences, int contextLength)
    {
        var n = sequences.Count;
        if (n == 0) throw new ArgumentException("no options to score", nameof(sequences));
        if (contextLength < 1) throw new ArgumentException("the context needs at least one token", nameof(contextLength));
        if (sequences.Any(s => s.Length <= contextLength)) throw new ArgumentException("every option needs at least one token after the context", nameof(sequences));
        // The shared prefix: normally the context itself; shorter when an option's first token merged into the
        // context's last one, in which case the differing context tokens run (unscored) with the option.
        var shared = contextLength;
        foreach (var s in sequences)
            for (var i = 0; i < shared; i++)
                if (s[i] != sequences[0][i]) { shared = i; break; }
        if (shared < 1) throw new ArgumentException("the options share no first token", nameof(sequences));

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var rest = sequences.Select(s => s.Length - 1 - shared).ToArray(); // inputs after the prefix (the last token is only a target)
        var width = rest.Max();
        using var cache = model.NewCache(n, shared + Math.Max(width, 1));
        var prefix = tensor(sequences[0].Take(shared).Select(t => (long)t).ToArray(), [1, shared], device: model.Device);
        using (var row = cache.Row(0))
        {
            var last = model.Forward(prefix, cache: row, lastOnly: true);
            var first = last.to_type(ScalarType.Float32).log_softmax(-1).reshape(-1); // predicts token `shared`
            var totals = new double[n];
            for (var i = 0; i < n; i++) cache.CopyRow(0, i, shared);
            if (shared == contextLength)
            {
                var firstTargets = tensor(sequences.Select(s => (long)s[shared]).ToArray(), device: model.Device);
                var picked = first.index_select(0, firstTargets).cpu().data<float>().ToArray();
                for (var i = 0; i < n; i++) totals[i] += picked[i];
            }
            if (width == 0) return totals;

            var ids = new long[n * width];
            var targets = new long[n * width];
            var scored = new float[n * width];
            for (var i = 0; i < n; i++)
                for (var j = 0; j < rest[i]; j++)
                {
                    ids[i * width + j] = sequences[i][shared + j];
                    var target = shared + j + 1;
                    targets[i * width + j] = sequences[i][target];
                    scored[i * width + j] = target >= contextLength ? 1 : 0;
                }
            using var all = cache.Rows(0, n, shared);
            var logits = model.Forward(tensor(ids, [n, width], device: model.Device), cache: all);
            var logp = logits.to_type(ScalarType.Float32).log_softmax(-1)
                .gather(-1, tensor(targets, [n, width, 1], device: model.Device)).squeeze(-1);
            var sums = (logp * tensor(scored, [n, width], device: model.Device)).sum(1).cpu().data<float>().ToArray();
            for (var i = 0; i < n; i++) totals[i] += sums[i];
            return totals;
        }
    }
}
