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
    public Tensor DecodeSlots(Tensor ids, Tensor positions, KvCache cache, long keys)
    {
        if (IsRewardModel) throw RewardForwardError();
        long rows = ids.shape[0];
        cache.BeginSlotStep(rows, positions, keys);
        try
        {
            var h = model.ForwardSlots(ids, positions, cache, keys);
            var logits = lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, model.EmbedTokens.Weight);
            if (Spec.FinalLogitSoftcap is double cap) logits = (logits / cap).tanh() * cap;
            return logits.squeeze(1);
        }
        finally
        {
            cache.EndSlotStep();
        }
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
