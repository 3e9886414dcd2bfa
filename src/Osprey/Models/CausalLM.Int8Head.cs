using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    /// <summary>
    /// OSPREY_CPU_INT8_HEAD=1: on the CPU, inference logits come from a row-wise int8 copy of the output head (or the tied
    /// embeddings) through libtorch's <c>_weight_int8pack_mm</c>. A Qwen2.5-0.5B-sized head is 136 M weights, the largest
    /// single read of a decode step; int8 halves it against bf16, as llama.cpp's q8_0 output does. Each row is scaled
    /// by its absmax / 127 and rounded, so logits move by that rounding: opt-in. Not used where the head trains, has
    /// an adapter or is quantized, nor with autograd.
    /// </summary>
    static readonly bool s_int8Head = Environment.GetEnvironmentVariable("OSPREY_CPU_INT8_HEAD") == "1";

    /// <summary>Whether this model uses the int8 head copy on the CPU (default: OSPREY_CPU_INT8_HEAD=1); tests set it per model.</summary>
    internal bool UseInt8Head { get; set; } = s_int8Head;

    (Tensor Codes, Tensor Scales)? _int8Head;
    bool _int8HeadRefused;

    /// <summary>The logits through the int8 head copy, or null when it does not apply (see <see cref="s_int8Head"/>).</summary>
    Tensor? Int8HeadLogits(Tensor h)
    {
        if (!UseInt8Head || _int8HeadRefused || h.device_type != DeviceType.CPU || h.requires_grad
            || h.dtype is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16)) return null;
        if (lm_head is { } head && (head.Adapter is not null || head.Base is not null)) return null;
        var weight = lm_head?.Weight ?? model.EmbedTokens.Weight;
        if (weight.requires_grad) return null;
        var cached = Int8HeadCopy(weight, h.dtype);
        var hidden = h.shape[^1];
        using var flat = h.reshape(-1, hidden);
        var y = CpuPackedMatmul.Int8Mm(flat, cached.Codes, cached.Scales);
        if (y is null)
        {
            _int8HeadRefused = true;
            DisposeInt8Head();
            return null;
        }
        var shape = h.shape.ToArray();
        shape[^1] = cached.Codes.shape[0];
        using (y) return y.reshape(shape);
    }

    /// <summary>The row-wise int8 copy of <paramref name="weight"/> (codes [vocab, hidden], scales [vocab] in <paramref name="dtype"/>), made once.</summary>
    (Tensor Codes, Tensor Scales) Int8HeadCopy(Tensor weight, ScalarType dtype)
    {
        if (_int8Head is { } cached && cached.Scales.dtype == dtype) return cached;
        DisposeInt8Head();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var f = weight.to_type(ScalarType.Float32);
        var scale = f.abs().amax([1]).clamp_min(1e-12).div(127);
        var codes = f.div(scale.unsqueeze(1)).round().clamp(-127, 127).to_type(ScalarType.Int8).contiguous();
        cached = (codes.DetachFromDisposeScope(), scale.to_type(dtype).contiguous().DetachFromDisposeScope());
        _int8Head = cached;
        return cached;
    }

    /// <summary>The int8 head copy the managed CPU decoder uses (null when <see cref="UseInt8Head"/> is off or the head is trained, adapted or quantized).</summary>
    (Tensor Codes, Tensor Scales)? Int8HeadForDecoder()
    {
        if (!UseInt8Head) return null;
        if (lm_head is { } head && (head.Adapter is not null || head.Base is not null)) return null;
        var weight = lm_head?.Weight ?? model.EmbedTokens.Weight;
        return weight.requires_grad ? null : Int8HeadCopy(weight, DType);
    }

    void DisposeInt8Head()
    {
        if (_int8Head is not { } cached) return;
        cached.Codes.Dispose();
        cached.Scales.Dispose();
        _int8Head = null;
    }
}
