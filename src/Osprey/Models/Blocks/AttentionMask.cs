using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// Which keys each query may attend to, shared by all layers with the same window. Either plain causal
/// (no tensor; SDPA's is_causal) or an explicit boolean mask [B, 1, Tq, Tk] (true = attend), also kept
/// "folded" for grouped-query attention: queries of the heads sharing one KV head are stacked along the
/// query axis, so the mask is repeated once per group member ([B, 1, rep·Tq, Tk]).
/// </summary>
internal sealed partial class AttentionMask
{
    /// <summary>The mask, or null for plain causal attention without padding or cache.</summary>
    public Tensor? Mask { get; }

    /// <summary>The mask repeated for folded grouped-query attention, or null.</summary>
    public Tensor? Folded { get; }

    /// <summary>With no tensor: true for causal attention, false when every query sees every key.</summary>
    public bool IsCausal { get; }

    /// <summary>
    /// The folded mask as an additive bias in the model's dtype (0 or −∞), built once per forward pass so the
    /// attention kernels of every layer take it as is; null when the boolean mask is used directly.
    /// </summary>
    public Tensor? AdditiveFolded { get; private init; }

    AttentionMask(Tensor? mask, Tensor? folded, bool causal)
    {
        Mask = mask;
        Folded = folded;
        IsCausal = causal;
    }

    /// <summary>Plain causal attention (prefill or training without padding).</summary>
    public static AttentionMask Causal { get; } = new(null, null, true);

    /// <summary>Every query sees every key (one-token decode steps without padding or window).</summary>
    public static AttentionMask All { get; } = new(null, null, false);

    /// <summary>
    /// Builds the mask for queries at cache slots [offset, offset+Tq) over keys [0, offset+Tq).
    /// <paramref name="keyValid"/> [B, Tk] marks real (non-padding) keys; <paramref name="window"/> limits
    /// each query to the last N slots including itself. Each query may always see itself, so padding rows
    /// never have an empty softmax (which would put NaN into later layers).
    /// </summary>
    public static AttentionMask Build(Tensor? keyValid, long batch, long offset, long queries, int? window, int groups, Device device)
    {
        var keys = offset + queries;
        var q = arange(offset, keys, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [Tq, 1]
        var k = arange(0, keys, dtype: ScalarType.Int64, device: device).unsqueeze(0);      // [1, Tk]
        var allowed = k <= q;
        if (window is int w) allowed = allowed.logical_and((q - k) < w);
        var m = allowed.unsqueeze(0).unsqueeze(0).expand(batch, 1, queries, keys);
        if (keyValid is not null)
            m = m.logical_and(keyValid.to_type(ScalarType.Bool).view(batch, 1, 1, keys));
        m = m.logical_or((k == q).unsqueeze(0).unsqueeze(0)).contiguous();
        Tensor? folded = null;
        if (groups > 1)
            folded = m.unsqueeze(2).expand(batch, 1, groups, queries, keys).reshape(batch, 1, groups * queries, keys);
        return new AttentionMask(m, folded, false);
    }

    /// <summary>
    /// The mask of one slot-decode step (<see cref="KvCache.BeginSlotStep"/>): row b's single query sits at
    /// position <paramref name="positions"/>[b] (int64 [B]) and sees cache positions 0..that position among the
    /// first <paramref name="keys"/> (within <paramref name="window"/> when set).
    /// </summary>
    public static AttentionMask ForSlotStep(Tensor positions, long keys, int? window, int groups, ScalarType dtype, Device device)
    {
        long batch = positions.shape[0];
        var k = arange(0, keys, dtype: ScalarType.Int64, device: device).unsqueeze(0); // [1, Tk]
        var q = positions.view(batch, 1);
        var allowed = k <= q;
        if (window is int w) allowed = allowed.logical_and((q - k) < w);
        var m = allowed.view(batch, 1, 1, keys);
        var folded = m.expand(batch, 1, groups, keys);
        var bias = zeros(batch, 1, groups, keys, dtype: dtype, device: device).masked_fill_(folded.logical_not(), Scalars.NegativeInfinity);
        return new AttentionMask(m, groups > 1 ? folded : null, false) { AdditiveFolded = bias };
    }

    /// <summary>
    /// Block-diagonal causal mask for packed rows (no cache): query i sees key j when j ≤ i and both lie in
    /// the same sample (<paramref name="segments"/> [B, T] holds a sample number per token), and, with
    /// <paramref name="window"/>, when i − j &lt; window (within one sample token distance equals position
    /// distance). The diagonal is always allowed.
    /// </summary>
    public static AttentionMask BuildPacked(Tensor segments, int? window, int groups, Device device)
    {
        long batch = segments.shape[0], t = segments.shape[1];
        var q = arange(0, t, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [T, 1]
        var k = arange(0, t, dtype: ScalarType.Int64, device: device).unsqueeze(0); // [1, T]
        var allowed = k <= q;
        if (window is int w) allowed = allowed.logical_and((q - k) < w);
        var same = segments.unsqueeze(2) == segments.unsqueeze(1);                    // [B, T, T]
        var m = same.logical_and(allowed.unsqueeze(0)).logical_or((k == q).unsqueeze(0)).unsqueeze(1).contiguous();
        Tensor? folded = null;
        if (groups > 1)
            folded = m.unsqueeze(2).expand(batch, 1, groups, t, t).reshape(batch, 1, groups * t, t);
        return new AttentionMask(m, folded, false);
    }
}
