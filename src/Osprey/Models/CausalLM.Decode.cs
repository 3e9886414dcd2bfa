using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    /// <summary>
    /// Logits [B, 1, vocab] for one decode step whose shapes never change, so it can be captured in a
    /// CUDA graph (<see cref="Runtime.CudaGraph"/>) and replayed: ids [B, 1] and positions [B, 1] (int64),
    /// <paramref name="slot"/> [1] int64 on the device (the cache slot this step's key/value go to; all
    /// slots after it are masked), <paramref name="keyValid"/> [B, cache capacity] bool (false marks
    /// padding). Attention always spans the cache's whole capacity. Nothing here reads a value back to the
    /// host or uses <see cref="KvCache.Length"/>; the caller advances <paramref name="slot"/> and
    /// <paramref name="positions"/> (in place, on the device) between steps.
    /// </summary>
    public Tensor DecodeStatic(Tensor ids, Tensor positions, Tensor slot, Tensor keyValid, KvCache cache)
    {
        if (IsRewardModel) throw RewardForwardError();
        if (ids.shape.Length != 2 || ids.shape[1] != 1) throw new ArgumentException($"DecodeStatic takes ids [B, 1], got [{string.Join(", ", ids.shape)}]");
        var h = model.ForwardStatic(ids, positions, slot, keyValid, cache);
        var logits = lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, model.EmbedTokens.Weight);
        if (Spec.FinalLogitSoftcap is double cap) logits = (logits / cap).tanh() * cap;
        return logits;
    }
}
