using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>
/// The one sampler of Osprey: picks each row's next token from logits with that row's own
/// <see cref="SamplingParams"/>, applying the processors in transformers' order: logit bias (OpenAI's, first),
/// repetition penalty, presence/frequency penalties (vLLM's order: after the repetition penalty), then, for rows
/// that sample, temperature, top-k, top-p and an inverse-CDF draw. <see cref="TokenGenerator"/> and
/// <c>InferenceEngine</c> both pick through it; only where the uniform numbers come from differs (one stream
/// per generation there, one per request here).
/// </summary>
internal static class TokenSampler
{
    /// <summary>
    /// The next token of each row, [n] int64 on the logits' device. <paramref name="logits"/> is float32 [n, vocab];
    /// <paramref name="seen"/> (bool [n, vocab], tokens of the prompt and output) applies the repetition penalty,
    /// <paramref name="counts"/> (float32 [n, vocab], output-token counts) the presence and frequency penalties;
    /// either may be null when no row asks for its penalty. <paramref name="uniforms"/> is called only when some
    /// row samples and gives [n, 1] float32 numbers in (0, 1] (any value for greedy rows).
    /// </summary>
    public static Tensor Pick(Tensor logits, IReadOnlyList<SamplingParams> rows, Tensor? seen, Tensor? counts, Func<Tensor> uniforms)
    {
        var n = rows.Count;
        var device = logits.device;
        var vocab = logits.shape[^1];
        var x = logits;
        if (rows.Any(s => s.LogitBias is { Count: > 0 }))
        {
            var entries = rows.SelectMany((s, row) => (s.LogitBias ?? new Dictionary<int, double>()).Select(b => (Row: (long)row, Token: (long)b.Key, Bias: (float)b.Value))).ToArray();
            x = x.clone().index_put_(tensor(entries.Select(e => e.Bias).ToArray(), device: device),
                [tensor(entries.Select(e => e.Row).ToArray(), device: device), tensor(entries.Select(e => e.Token).ToArray(), device: device)], accumulate: true);
        }
        if (seen is not null && rows.Any(s => s.RepetitionPenalty != 1.0))
        {
            // CTRL's penalty: a seen token's logit is divided by the penalty when positive, multiplied when negative.
            var penalty = tensor(rows.Select(s => (float)s.RepetitionPenalty).ToArray(), [n, 1], device: device);
            x = where(seen, where(x.lt(Scalars.Zero), x * penalty, x / penalty), x);
        }
        if (counts is not null && rows.Any(s => s.CountsOutput))
        {
            var frequency = tensor(rows.Select(s => (float)s.FrequencyPenalty).ToArray(), [n, 1], device: device);
            var presence = tensor(rows.Select(s => (float)s.PresencePenalty).ToArray(), [n, 1], device: device);
            x = x - counts * frequency - counts.gt(Scalars.Zero).to_type(ScalarType.Float32) * presence;
        }
        var next = x.argmax(-1);
        if (rows.All(s => s.IsGreedy)) return next;

        var temps = tensor(rows.Select(s => s.IsGreedy ? 1f : (float)s.Temperature).ToArray(), [n, 1], device: device);
        var y = x / temps;
        var ks = rows.Select(s => s.IsGreedy || s.TopK <= 0 || s.TopK >= vocab ? 0 : s.TopK).ToArray();
        var isSampled = tensor(rows.Select(s => !s.IsGreedy).ToArray(), device: device);
        // Every sampled row keeps a top-k (ms-swift's and GRPO's default 50): the rest happens among the kept tokens.
        if (rows.Select((s, i) => s.IsGreedy || ks[i] > 0).All(b => b))
            return where(isSampled, SampleAmongTopK(y, rows, ks, uniforms), next);
        if (ks.Any(k => k > 0))
        {
            var top = y.topk(ks.Max(), -1, true, true).values;
            var kth = top.gather(1, tensor(ks.Select(k => (long)Math.Max(k, 1) - 1).ToArray(), [n, 1], device: device));
            var limited = tensor(ks.Select(k => k > 0).ToArray(), [n, 1], device: device);
            y = y.masked_fill(limited.logical_and(y < kth), Scalars.NegativeInfinity);
        }
        var ps = rows.Select(s => s.IsGreedy || s.TopP >= 1.0 ? 2f : (float)s.TopP).ToArray();
        if (ps.Any(p => p < 1f))
        {
            // A token goes when the strictly more likely tokens already reach p (transformers' rule, written
            // for descending order); the most likely token always stays.
            var (sorted, order) = y.sort(-1, true, false);
            var probs = sorted.softmax(-1);
            var before = probs.cumsum(-1) - probs;
            var remove = before >= tensor(ps, [n, 1], device: device);
            remove.narrow(-1, 0, 1).fill_(Scalars.False);
            y = y.masked_fill(remove.scatter(-1, order, remove), Scalars.NegativeInfinity);
        }
        // Inverse-CDF sampling: the token whose cumulative-probability interval holds u·total, u in (0, 1].
        // Tokens removed above have zero-width intervals and can never be picked.
        var cdf = y.softmax(-1).cumsum(-1);
        var draw = uniforms().to(device) * cdf.narrow(-1, vocab - 1, 1);
        using var last = ((long)vocab - 1).ToScalar();
        var sampled = (cdf < draw).sum(-1).clamp_max(last);
        return where(isSampled, sampled, next);
    }

    /// <summary>
    /// The sampled rows' tokens when each keeps a top-k: the same tokens as the whole-vocabulary path below it in
    /// <see cref="Pick"/>, from [rows, kept] tensors instead of sorting and summing [rows, vocab] ones (a 150k
    /// vocabulary sorted for 32 rows took most of a sampled decode step). Kept: every token at least the k-th largest
    /// (ties included, as transformers' top-k keeps them); top-p then drops a token when the strictly more likely kept
    /// tokens reach p; the draw walks the kept tokens in vocabulary order, as the whole-vocabulary inverse CDF does,
    /// so a uniform picks the same token. Greedy rows get any value (the caller takes argmax for them).
    /// </summary>
    static Tensor SampleAmongTopK(Tensor y, IReadOnlyList<SamplingParams> rows, int[] ks, Func<Tensor> uniforms)
    {
        var n = rows.Count;
        var device = y.device;
        var k = ks.Max();
        var (values, ids) = y.topk(k, -1, true, true);
        var kth = values.gather(1, tensor(ks.Select(v => (long)Math.Max(v, 1) - 1).ToArray(), [n, 1], device: device));
        // Ties at the k-th value stay, so a row may keep more than k: then take as many as the largest row keeps.
        var kept = (int)y.ge(kth).sum(-1).max().item<long>();
        if (kept > k) (values, ids) = y.topk(kept, -1, true, true);
        values = values.masked_fill(values < kth, Scalars.NegativeInfinity);
        var ps = rows.Select(s => s.IsGreedy || s.TopP >= 1.0 ? 2f : (float)s.TopP).ToArray();
        if (ps.Any(p => p < 1f))
        {
            var probs = values.softmax(-1);
            var before = probs.cumsum(-1) - probs;
            var remove = before >= tensor(ps, [n, 1], device: device);
            remove.narrow(-1, 0, 1).fill_(Scalars.False);
            values = values.masked_fill(remove, Scalars.NegativeInfinity);
        }
        var (byId, order) = ids.sort(-1, false, false);
        var cdf = values.gather(1, order).softmax(-1).cumsum(-1);
        var draw = uniforms().to(device) * cdf.narrow(-1, kept - 1, 1);
        using var lastKept = ((long)kept - 1).ToScalar();
        var position = (cdf < draw).sum(-1).clamp_max(lastKept);
        return byId.gather(1, position.unsqueeze(1)).squeeze(1);
    }

    /// <summary>Adds the picked tokens to the seen-token table and the output counts (either may be null).</summary>
    public static void Record(Tensor next, Tensor? seen, Tensor? counts)
    {
        var n = next.shape[0];
        seen?.scatter_(1, next.unsqueeze(1), ones(n, 1, dtype: ScalarType.Bool, device: next.device));
        counts?.scatter_add_(1, next.unsqueeze(1), ones(n, 1, dtype: ScalarType.Float32, device: next.device));
    }
}
