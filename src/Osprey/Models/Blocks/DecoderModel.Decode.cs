using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

internal sealed partial class DecoderModel
{
    /// <summary>
    /// One decode step at fixed shapes, for CUDA graph capture: ids [B, 1], positions [B, 1] (RoPE),
    /// <paramref name="slot"/> [1] int64 (the cache slot written this step, the same for all rows),
    /// <paramref name="keyValid"/> [B, capacity] bool (false = a padding slot). Attention runs over the
    /// whole preallocated cache with a mask built on the device (slot ≤ current, valid, inside the window),
    /// so nothing depends on a host-side length. Returns the final-normed hidden state [B, 1, hidden].
    /// </summary>
    public Tensor ForwardStatic(Tensor ids, Tensor positions, Tensor slot, Tensor keyValid, KvCache cache)
    {
        long b = ids.shape[0], cap = cache.Capacity;
        var device = ids.device;
        var tables = _ropes.Select(r => r.Tables(positions, _dtype)).ToArray();
        var groups = _spec.NumHeads / _spec.NumKvHeads;
        var keyIdx = arange(0, cap, dtype: ScalarType.Int64, device: device).unsqueeze(0); // [1, cap]
        var here = keyIdx == slot;                                                         // [1, cap]
        var masks = new Dictionary<int, AttentionMask>();
        foreach (var window in _windowOfLayer.Distinct())
        {
            var allowed = keyIdx <= slot;
            if (window is int w) allowed = allowed.logical_and((slot - keyIdx) < w);
            var m = allowed.logical_and(keyValid).logical_or(here).view(b, 1, 1, cap);
            masks[window ?? -1] = AttentionMask.FromDecodeMask(m, groups);
        }
        var context = new LayerContext(tables, masks, cache);
        var h = Embed(ids);
        cache.Slot = slot;
        try
        {
            for (int i = 0; i < layers.Count; i++)
            {
                using var layerScope = NewDisposeScope();
                var next = Layer(i, h, context).MoveToOuterDisposeScope();
                if (i > 0) h.Dispose();
                h = next;
            }
        }
        finally
        {
            cache.Slot = null;
        }
        return norm.forward(h);
    }
}
