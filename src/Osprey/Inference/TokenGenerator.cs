using Osprey.Models;

using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>
/// Prefill + KV-cache decode for a <see cref="CausalLM"/>: greedy or sampled, one prompt or a batch, with the
/// engine's <see cref="SamplingParams"/>, sampler (<see cref="TokenSampler"/>) and stop-string rule
/// (<see cref="StopMatcher"/>). Batches are left-padded; the padding is masked and positions count real tokens
/// only, so each row gets the tokens it would get alone. Not thread-safe: one generation at a time per model.
/// </summary>
public sealed class TokenGenerator
{
    readonly CausalLM _model;
    readonly Func<IReadOnlyList<int>, string>? _decode;

    /// <summary>Generates with <paramref name="model"/>; <paramref name="decode"/> turns ids into text, for stop strings.</summary>
    public TokenGenerator(CausalLM model, Func<IReadOnlyList<int>, string>? decode = null)
    {
        _model = model;
        _decode = decode;
    }

    /// <summary>Generates for one prompt.</summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, SamplingParams options, Action<TokenEvent>? onToken = null, CancellationToken cancel = default)
        => Generate([prompt], options, onToken, cancel)[0];

    /// <summary>
    /// Generates for each prompt; <paramref name="onToken"/> sees every new token as it is picked (rows that
    /// have finished send nothing more). Every row uses the same <paramref name="options"/> and one random stream
    /// seeded by <see cref="SamplingParams.Seed"/>; its stop token ids are the end-of-sequence ids.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingParams options,
        Action<TokenEvent>? onToken = null, CancellationToken cancel = default)
    {
        Validate(options);
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
        var context = _model.Spec.MaxPositionEmbeddings is int m and > 0 ? Math.Min(m, 8192) : 8192;
        var maxNew = options.NewTokenLimit(width, context);
        if (maxNew == 0) return outputs.Select(o => new GenerationResult(o, FinishReason.Length)).ToArray();

        var device = _model.Device;
        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        bool padded = prompts.Any(p => p.Count != width);
        long capacity = width + maxNew;
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
        var counts = options.CountsOutput ? zeros(batch, _model.Spec.VocabSize, dtype: ScalarType.Float32, device: device) : null;
        // The random stream lives on the CPU (TorchSharp 0.107 cannot make a CUDA generator), so a seed gives
        // the same tokens on every device; only B uniform numbers per step cross to the GPU.
        using torch.Generator? rng = options.IsGreedy ? null : new torch.Generator((ulong)(options.Seed ?? DateTime.UtcNow.Ticks), CPU);
        var rows = Enumerable.Repeat(options, batch).ToArray();
        var stopIds = options.EffectiveStopTokenIds;
        var stopStrings = options.Stop.Where(s => s.Length > 0).ToArray();
        var stops = stopStrings.Length == 0 ? null : prompts.Select(_ => new StopMatcher(_decode!, stopStrings)).ToArray();

        Tensor input = tensor(ids, [batch, width], device: device);
        Tensor pos = positions;
        for (int step = 0; step < maxNew; step++)
        {
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            long len = cache.Length + input.shape[1];
            var keyValid = padded ? validAll.narrow(1, 0, len) : null;
            var logits = _model.Forward(input, keyValid, pos, cache, lastOnly: true).squeeze(1).to_type(ScalarType.Float32);
            var next = TokenSampler.Pick(logits, rows, seen, counts, () => 1.0f - rand([batch, 1], generator: rng));
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
                if (stopIds.Contains(token)) reasons[r] = FinishReason.Eos;
                else if (stops is not null)
                {
                    stops[r].Add(token);
                    if (stops[r].Stopped is not null) reasons[r] = FinishReason.StopString;
                }
            }
            if (reasons.All(r => r is not null)) break;
            TokenSampler.Record(next, seen, counts);
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

    /// <summary>Checks ranges once at the entry point, in the words of transformers' generate (max_new_tokens, top_k ≥ 0).</summary>
    void Validate(SamplingParams o)
    {
        if (o.MaxTokens < 0) throw new OspreyException($"max_new_tokens must be 0 or more, got {o.MaxTokens}.");
        if (!double.IsFinite(o.Temperature) || !double.IsFinite(o.TopP) || !double.IsFinite(o.RepetitionPenalty))
            throw new OspreyException($"temperature, top_p and repetition_penalty must be finite numbers, got {o.Temperature}, {o.TopP} and {o.RepetitionPenalty}.");
        if (o.Temperature < 0) throw new OspreyException($"temperature must be 0 or more, got {o.Temperature}.");
        if (o.TopK < 0) throw new OspreyException($"top_k must be 0 (off) or more, got {o.TopK}.");
        if (o.TopP is <= 0 or > 1) throw new OspreyException($"top_p must be in (0, 1], got {o.TopP}.");
        if (o.RepetitionPenalty <= 0) throw new OspreyException($"repetition_penalty must be positive, got {o.RepetitionPenalty}.");
        if (!double.IsFinite(o.PresencePenalty) || !double.IsFinite(o.FrequencyPenalty))
            throw new OspreyException($"presence_penalty and frequency_penalty must be finite numbers, got {o.PresencePenalty} and {o.FrequencyPenalty}.");
        foreach (var token in o.LogitBias?.Keys ?? [])
            if (token < 0 || token >= _model.Spec.VocabSize) throw new OspreyException($"logit_bias names token id {token}, outside the model's vocabulary of {_model.Spec.VocabSize}.");
        if (o.Stop.Count > 0 && _decode is null) throw new OspreyException("stop strings need a tokenizer to decode the output; give the TokenGenerator a Decode function or drop the stop strings.");
    }
}
