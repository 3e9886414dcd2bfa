using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// bitsandbytes' quantization arithmetic on tensors of any device, written from its documented algorithms:
/// blockwise 4-bit (quantize_4bit / dequantize_4bit), blockwise 8-bit with the dynamic map (quantize_blockwise, used
/// to double-quantize absmax) and LLM.int8's row-wise int8 (int8_vectorwise_quant). Rounding follows the CUDA kernels:
/// a value is scaled by the reciprocal of its block's absmax, and a value on a midpoint between two codes takes the
/// lower one (FP4 keeps the sign bit of negative values, so a small negative value is code 8, "-0").
/// </summary>
internal static class BnbFunctional
{
    /// <summary>The 4-bit block size transformers and ms-swift use (bitsandbytes' default).</summary>
    public const int BlockSize4Bit = 64;

    /// <summary>The block size of absmax's double quantization.</summary>
    public const int NestedBlockSize = 256;

    /// <summary>
    /// Quantizes <paramref name="values"/> (any shape, any float dtype) to 4 bits in blocks of <paramref name="blockSize"/>
    /// over the flattened tensor: returns the packed bytes [(n + 1) / 2, 1] uint8 (element 2k in the high nibble, 2k + 1
    /// in the low one) and the float32 absmax of each block.
    /// </summary>
    public static (Tensor Packed, Tensor Absmax) Quantize4Bit(Tensor values, FourBitType type, int blockSize = BlockSize4Bit)
    {
        using var scope = NewDisposeScope();
        var flat = values.detach().flatten().to_type(ScalarType.Float32);
        var n = flat.numel();
        var blocks = (n + blockSize - 1) / blockSize;
        var padded = Pad(flat, blocks * blockSize).view(blocks, blockSize);
        var absmax = padded.abs().amax([1]);
        var scaled = padded * absmax.reciprocal().unsqueeze(1);
        var codes = Codes4Bit(scaled.flatten(), type);
        var packed = codes.view(-1, 2);
        var bytes = packed.select(1, 0).bitwise_left_shift(4).bitwise_or(packed.select(1, 1)).to_type(ScalarType.Byte);
        var result = bytes.narrow(0, 0, (n + 1) / 2).reshape(-1, 1).contiguous();
        return (result.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>4-bit codes (int64) of values already scaled into [-1, 1]; NaN (a block of zeros) gives code 0, as the kernel does.</summary>
    static Tensor Codes4Bit(Tensor scaled, FourBitType type)
    {
        var nan = scaled.isnan();
        if (type == FourBitType.Nf4)
        {
            using var thresholds = tensor(BnbCodes.Nf4Thresholds, device: scaled.device);
            return bucketize(scaled, thresholds).masked_fill(nan, 0);
        }
        using var fp4 = tensor(BnbCodes.Fp4Thresholds, device: scaled.device);
        using var magnitudeCodes = tensor(BnbCodes.Fp4MagnitudeCodes, device: scaled.device);
        var magnitude = magnitudeCodes.index(bucketize(scaled.abs(), fp4).masked_fill(nan, 0));
        return magnitude + scaled.lt(0).to_type(ScalarType.Int64) * 8;
    }

    /// <summary>The float32 values of <paramref name="n"/> packed 4-bit codes times their block's absmax (flat).</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, FourBitType type, long n, int blockSize = BlockSize4Bit)
    {
        using var scope = NewDisposeScope();
        var bytes = packed.flatten().to_type(ScalarType.Int64);
        var codes = stack([bytes.bitwise_right_shift(4), bytes.bitwise_and(15)], 1).flatten().narrow(0, 0, n);
        using var table = tensor(BnbCodes.Table(type), device: packed.device);
        var blocks = (n + blockSize - 1) / blockSize;
        var scale = absmax.to_type(ScalarType.Float32).repeat_interleave(blockSize).narrow(0, 0, n);
        if (absmax.numel() != blocks) throw new ArgumentException($"absmax has {absmax.numel()} blocks where {n} values need {blocks}");
        return (table.index(codes) * scale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// quantize_blockwise with the dynamic map: float32 values in blocks of <paramref name="blockSize"/>, each scaled by
    /// its absmax and coded as the nearest map value (ties: the lower index). Returns uint8 codes and float32 absmax.
    /// </summary>
    public static (Tensor Codes, Tensor Absmax) QuantizeBlockwise8(Tensor values, Tensor map, int blockSize = NestedBlockSize)
    {
        using var scope = NewDisposeScope();
        var flat = values.flatten().to_type(ScalarType.Float32);
        var n = flat.numel();
        var blocks = (n + blockSize - 1) / blockSize;
        var padded = Pad(flat, blocks * blockSize).view(blocks, blockSize);
        var absmax = padded.abs().amax([1]);
        var scaled = (padded * absmax.reciprocal().unsqueeze(1)).flatten().narrow(0, 0, n);
        var midpoints = (map.narrow(0, 0, 255) + map.narrow(0, 1, 255)) * 0.5f;
        var codes = bucketize(scaled, midpoints).masked_fill(scaled.isnan(), 0).to_type(ScalarType.Byte);
        return (codes.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>dequantize_blockwise: map[code] × the block's absmax, float32.</summary>
    public static Tensor DequantizeBlockwise8(Tensor codes, Tensor absmax, Tensor map, int blockSize = NestedBlockSize)
    {
        using var scope = NewDisposeScope();
        var n = codes.numel();
        var values = map.index(codes.flatten().to_type(ScalarType.Int64));
        var scale = absmax.repeat_interleave(blockSize).narrow(0, 0, n);
        return (values * scale).MoveToOuterDisposeScope();
    }

    /// <summary>LLM.int8 row-wise quantization of a [out, in] weight: CB = round(W · 127 / SCB) as int8, SCB = max |row| (float32); zero rows give zeros.</summary>
    public static (Tensor CB, Tensor SCB) QuantizeRowwise(Tensor weight)
    {
        using var scope = NewDisposeScope();
        var w = weight.detach().to_type(ScalarType.Float32);
        var scb = w.abs().amax([1]);
        // A true division (127 / SCB, correctly rounded): TorchSharp's scalar / tensor multiplies by a reciprocal instead.
        var scale = full_like(scb, 127.0f).div(scb).unsqueeze(1);
        var cb = (w * scale).round().nan_to_num(0, 0, 0).to_type(ScalarType.Int8);
        return (cb.MoveToOuterDisposeScope(), scb.MoveToOuterDisposeScope());
    }

    /// <summary>int8_vectorwise_dequant: CB × SCB × (1/127 as float32).</summary>
    public static Tensor DequantizeRowwise(Tensor cb, Tensor scb)
    {
        using var scope = NewDisposeScope();
        var w = cb.to_type(ScalarType.Float32) * scb.to_type(ScalarType.Float32).unsqueeze(1) * 7.874015718698502e-3f;
        return w.MoveToOuterDisposeScope();
    }

    static Tensor Pad(Tensor flat, long length) =>
        flat.numel() == length ? flat : nn.functional.pad(flat, [0, length - flat.numel()]);
}
