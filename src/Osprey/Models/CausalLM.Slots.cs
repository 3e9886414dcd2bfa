using Osprey.Models.Blocks;
using static TorchSharp.torch;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    /// <summary>
    /// One decode step of a batch whose rows sit at different positions of a slot cache (the serving engine's
    /// continuous batching): ids [B, 1], <paramref name="positions"/> int64 [B] on the model's device (the
    /// position each row's new token takes, which is also where its key/value is written), attention over the
    /// first <paramref name="keys"/> positions of rows [0, B) of <paramref name="cache"/>, each row masked to
    /// its own length. Returns logits [B, vocab] in the model's dtype.
    /// </summary>
    /// <remarks>
    /// <paramref name="uniform"/> promises that every row sits at position <paramref name="keys"/> − 1 (one request
    /// alone, or rows of equal length): attention then needs no mask. <paramref name="ropePositions"/> (int64 [B])
    /// gives the rotary position of each row when it differs from the cache position: a vision-language row after
    /// its images (<see cref="PrefillWithImages"/>'s delta added).
    /// </remarks>
    public Tensor DecodeSlots(Tensor ids, Tensor positions, KvCache cache, long keys, bool uniform = false, Tensor? ropePositions = null)
    {
        if (IsRewardModel) throw RewardForwardError();
        if (TryCpuDecodeSlot(ids, positions, cache, keys, uniform, ropePositions) is { } fast) return fast;
        long rows = ids.shape[0];
        cache.BeginSlotStep(rows, positions, keys);
        try
        {
            var h = model.ForwardSlots(ids, positions, cache, keys, uniform, ropePositions);
            if (SkipsLogits) return h;
            var logits = Head(h);
            return logits.squeeze(1);
        }
        finally
        {
            cache.EndSlotStep();
        }
    }

    /// <summary>
    /// Prefill of several prompts at once into an empty cache (typically <see cref="KvCache.Rows"/> of a slot
    /// pool): ids [B, T] right-padded (padding after a row's prompt writes cache positions the row overwrites
    /// before it ever attends to them), and logits [B, vocab] at each row's last real token
    /// <paramref name="lastIndex"/> (int64 [B]) only.
    /// </summary>
    public Tensor PrefillLast(Tensor ids, KvCache cache, Tensor lastIndex)
    {
        if (IsRewardModel) throw RewardForwardError();
        var h = model.Forward(ids, null, null, cache);
        var hidden = h.shape[2];
        var last = h.gather(1, lastIndex.view(-1, 1, 1).expand(-1, 1, hidden));
        if (SkipsLogits) return last;
        var logits = Head(last);
        return logits.squeeze(1);
    }

    /// <summary>
    /// The final hidden states [B, T, hidden] (after the last norm) of ids [B, T] without padding: what
    /// /v1/embeddings pools.
    /// </summary>
    public Tensor HiddenStates(Tensor ids)
    {
        if (IsRewardModel) throw RewardForwardError();
        return model.Forward(ids, null, null, null);
    }
}
