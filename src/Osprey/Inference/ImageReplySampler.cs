using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Inference;

/// <summary>
/// The next-token choice of one sampled reply of an image chat in <c>osprey infer</c>: <see cref="TokenSampler"/> with
/// the run's <see cref="SamplingParams"/> (temperature, top-k, top-p, and the repetition penalty over the prompt and
/// the reply so far), drawing uniform numbers from a CPU stream seeded with <c>--seed</c> afresh for each reply, as the
/// text chat's <see cref="TokenGenerator"/> does: the same question, images and seed give the same reply on any device.
/// </summary>
internal sealed class ImageReplySampler : IDisposable
{
    readonly SamplingParams _options;
    readonly torch.Generator _rng;
    readonly Tensor? _seen;

    ImageReplySampler(SamplingParams options, IReadOnlyList<int> prompt, int vocab, Device device)
    {
        _options = options;
        _rng = new torch.Generator((ulong)(options.Seed ?? 0), CPU);
        if (options.RepetitionPenalty != 1.0)
        {
            _seen = zeros(1, vocab, dtype: ScalarType.Bool, device: device);
            using var ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Count], device: device);
            using var on = ones(1, prompt.Count, dtype: ScalarType.Bool, device: device);
            _seen.scatter_(1, ids, on);
        }
    }

    /// <summary>A sampler for one reply to <paramref name="prompt"/>, or null when <paramref name="options"/> decode greedily
    /// (the model then takes the argmax itself).</summary>
    public static ImageReplySampler? For(SamplingParams options, IReadOnlyList<int> prompt, int vocab, Device device) =>
        options.IsGreedy ? null : new ImageReplySampler(options, prompt, vocab, device);

    /// <summary>The next id from float32 logits [1, vocab]; it counts as seen for the repetition penalty from then on.</summary>
    public int Pick(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var next = TokenSampler.Pick(logits, [_options], _seen, null, () => 1.0f - rand([1, 1], generator: _rng));
        TokenSampler.Record(next, _seen, null);
        return (int)next.cpu().item<long>();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _seen?.Dispose();
        _rng.Dispose();
    }
}
