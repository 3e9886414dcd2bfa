using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>
/// Prefill + KV-cache decode for a <see cref="CausalLM"/>: greedy or sampled, one prompt or a batch.
/// Batches are left-padded; the padding is masked and positions count real tokens only, so each row gets
/// the tokens it would get alone. Not thread-safe: one generation at a time per model.
/// </summary>
public sealed class TokenGenerator
{
    readonly CausalLM _model;

    /// <summary>Generates with <paramref name="model"/>.</summary>
    public TokenGenerator(CausalLM model) => _model = model;

    /// <summary>Generates for one prompt.</summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, GenerationOptions options, Action<TokenEvent>? onToken = null, CancellationToken cancel = default)
        => Generate([prompt], options, onToken, cancel)[0];

    /// <summary>
    /// Generates for each prompt; <paramref name="onToken"/> sees every new token as it is picked (rows that
    /// have finished send nothing more).
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options,
        Action<TokenEvent>? onToken = null, CancellationToken cancel = default)
    {
        options.Validate();
        if (prompts.Count == 0) return [];
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Count == 0) throw new OspreyException($"prompt {i} is empty; give at least one token.");
            foreach (var id in prompts[i])
                if (id < 0 || id >= _model.Spec.VocabSize)
                    throw new OspreyException($"prompt {i} holds token id {id}, outside the model's vocabulary of {_model.Spec.VocabSize}.");
        }
        int batch = prompts.Count;
        int width = prompts.Max(p => p.Count);
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var reasons = new FinishReason?[batch];
        if (options.MaxNewTokens == 0) return outputs.Select(o => new GenerationResult(o, FinishReason.Length)).ToArray();

        var device = _model.Device;
        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        bool padded = prompts.Any(p => p.Count != width);
        long capacity = width + options.MaxNewTokens;
        using var cache = _model.NewCache(batch, capacity);

        // Left-padded ids, validity of each cache slot, and the position of each row's last real token.
        var ids = new long[batch * width];
        var valid = new long[batch * capacity];
        for (int r = 0; r < batch; r++)
        {
            var p = prompts[r];
            int pad = width - p.Count;
            for (int j = 0; j < width; j++)
            {
                ids[r * width + j] = j < pad ? options.PadTokenId : p[j - pad];
                valid[r * capacity + j] = j < pad ? 0 : 1;
            }
            for (int j = width; j < capacity; j++) valid[r * capacity + j] = 1;
        }
        var validAll = tensor(valid, [batch, capacity], device: device);
        var positions = (validAll.narrow(1, 0, width).cumsum(1) - 1).clamp_min(0);
        var lastPos = positions.narrow(1, width - 1, 1).clone();
        Tensor? seen = null;
        if (options.RepetitionPenalty != 1.0)
        {
            seen = zeros(batch, _model.Spec.VocabSize, dtype: ScalarType.Bool, device: device);
            var idsCpu = tensor(ids, [batch, width], device: device);
            seen.scatter_(1, idsCpu, validAll.narrow(1, 0, width).to_type(ScalarType.Bool));
        }
        // The random stream lives on the CPU (TorchSharp 0.107 cannot make a CUDA generator), so a seed gives
        // the same tokens on every device; only B uniform numbers per step cross to the GPU.
        using torch.Generator? rng = options.IsGreedy ? null : new torch.Generator((ulong)(options.Seed ?? DateTime.UtcNow.Ticks), CPU);
        int maxStop = options.StopStrings.Count == 0 ? 0 : options.StopStrings.Max(s => s.Length);

        Tensor input = tensor(ids, [batch, width], device: device);
        Tensor pos = positions;
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            long len = cache.Length + input.shape[1];
            var keyValid = padded ? validAll.narrow(1, 0, len) : null;
            var logits = _model.Forward(input, keyValid, pos, cache, lastOnly: true).squeeze(1).to_type(ScalarType.Float32);
            var next = Pick(logits, options, seen, rng);
            // Finished rows keep feeding the pad token, as transformers does.
            if (reasons.Any(r => r is not null))
            {
                var doneMask = tensor(reasons.Select(r => r is not null).ToArray(), device: device);
                next = where(doneMask, full_like(next, options.PadTokenId), next);
            }
            var host = next.cpu().data<long>().ToArray();
            for (int r = 0; r < batch; r++)
            {
                if (reasons[r] is not null) continue;
                var token = (int)host[r];
                outputs[r].Add(token);
                onToken?.Invoke(new TokenEvent(r, token, outputs[r].Count - 1));
                if (options.EosTokenIds.Contains(token)) reasons[r] = FinishReason.Eos;
                else if (maxStop > 0 && HitsStopString(outputs[r], options, maxStop)) reasons[r] = FinishReason.StopString;
            }
            if (reasons.All(r => r is not null)) break;
            seen?.scatter_(1, next.unsqueeze(1), ones(batch, 1, dtype: ScalarType.Bool, device: device));
            lastPos.add_(1);
            // Hand this step's token and position to the next step and free the previous ones, so nothing
            // accumulates over a long generation.
            var (oldInput, oldPos) = (input, pos);
            input = next.unsqueeze(1).MoveToOuterDisposeScope();
            pos = lastPos.clone().MoveToOuterDisposeScope();
            oldInput.Dispose();
            if (!ReferenceEquals(oldPos, positions)) oldPos.Dispose();
        }
        return outputs.Select((o, r) => new GenerationResult(o, reasons[r] ?? FinishReason.Length)).ToArray();
    }

    /// <summary>
    /// Picks the next token per row from float32 logits [B, V], applying transformers' processors in its
    /// order: repetition penalty, then (when sampling) temperature, top-k, top-p.
    /// </summary>
    internal static Tensor Pick(Tensor logits, GenerationOptions o, Tensor? seen, torch.Generator? rng)
    {
        if (seen is not null)
        {
            var penalised = where(logits < 0, logits * o.RepetitionPenalty, logits / o.RepetitionPenalty);
            logits = where(seen, penalised, logits);
        }
        if (o.IsGreedy) return logits.argmax(-1);
        if (o.Temperature != 1.0) logits = logits / o.Temperature;
        var vocab = logits.shape[^1];
        if (o.TopK > 0 && o.TopK < vocab)
        {
            var kth = logits.topk(o.TopK, -1, true, true).values.narrow(-1, o.TopK - 1, 1);
            logits = logits.masked_fill(logits < kth, double.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            var (sorted, order) = logits.sort(-1, false, false);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            var remove = cumulative <= (1.0 - o.TopP);
            remove.narrow(-1, vocab - 1, 1).fill_(false); // always keep the most likely token
            var removeInPlace = remove.scatter(-1, order, remove);
            logits = logits.masked_fill(removeInPlace, double.NegativeInfinity);
        }
        // Inverse-CDF sampling: the token whose cumulative-probability interval holds u·total, u in (0, 1].
        // Tokens removed above have zero-width intervals and can never be picked.
        var cdf = logits.softmax(-1).cumsum(-1);
        var u = (1.0 - rand([logits.shape[0], 1], generator: rng)).to(logits.device) * cdf.narrow(-1, vocab - 1, 1);
        return (cdf < u).sum(-1).clamp_max(vocab - 1);
    }

    static bool HitsStopString(List<int> output, GenerationOptions o, int maxStop)
    {
        // Decode a tail long enough to hold any stop string even if every token were one character.
        var tail = output.Count <= maxStop + 8 ? output : output.GetRange(output.Count - maxStop - 8, maxStop + 8);
        var text = o.Decode!(tail);
        foreach (var s in o.StopStrings)
            if (s.Length > 0 && text.Contains(s, StringComparison.Ordinal)) return true;
        return false;
    }
}
