using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

internal sealed partial class DecoderModel
{
    /// <summary>
    /// Like <see cref="Forward"/> but from input embeddings [B, T, hidden] (a vision-language model has replaced the
    /// image placeholders' rows with image features). <paramref name="positions"/> is [B, T] or, for M-RoPE, [3, B, T].
    /// </summary>
    public Tensor ForwardEmbeds(Tensor embeds, Tensor? positions, Tensor? keyValid, KvCache? cache)
    {
        long t = embeds.shape[1];
        // Prepare reads only the batch and length (and device) of its first argument.
        var context = Prepare(embeds, positions, keyValid, cache, null);
        var h = Layers(embeds, context);
        cache?.Advance(t);
        return norm.forward(h);
    }
}
