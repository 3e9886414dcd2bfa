using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// A linear weight in bitsandbytes' 4-bit form (Linear4bit / Params4bit): packed codes, one absmax per block of 64 and,
/// with double quantization, the absmax values themselves coded in 8 bits per block of 256 around their mean. Holds only
/// that form; <see cref="Dequantize"/> builds the dense weight for one forward.
/// </summary>
internal sealed class FourBitWeight : ILinearBase
{
    /// <summary>Packed codes [(n + 1) / 2, 1] uint8.</summary>
    public Tensor Packed { get; }

    /// <summary>float32 absmax per block, or (double quantization) its uint8 codes.</summary>
    public Tensor Absmax { get; }

    /// <summary>The 16 values of the 4-bit type (quant_map).</summary>
    public Tensor QuantMap { get; }

    /// <summary>Double quantization: float32 absmax of each block of 256 absmax values.</summary>
    public Tensor? NestedAbsmax { get; }

    /// <summary>Double quantization: the 256-value dynamic map.</summary>
    public Tensor? NestedQuantMap { get; }

    /// <summary>Double quantization: the mean subtracted from absmax before coding it.</summary>
    public float NestedOffset { get; }

    /// <summary>NF4 or FP4.</summary>
    public FourBitType Type { get; }

    /// <summary>Values per block.</summary>
    public int BlockSize { get; }

    /// <summary>Values per nested block.</summary>
    public int NestedBlockSize { get; }

    /// <summary>The dtype of the weight before quantization (the quant state's dtype).</summary>
    public ScalarType DType { get; }

    /// <inheritdoc />
    public long OutFeatures { get; }

    /// <inheritdoc />
    public long InFeatures { get; }

    /// <inheritdoc />
    public ScalarType ComputeDType { get; }

    FourBitWeight(Tensor packed, Tensor absmax, Tensor quantMap, Tensor? nestedAbsmax, Tensor? nestedMap, float offset,
        FourBitType type, int blockSize, int nestedBlockSize, ScalarType dtype, long outFeatures, long inFeatures, ScalarType compute)
    {
        (Packed, Absmax, QuantMap, NestedAbsmax, NestedQuantMap, NestedOffset) = (packed, absmax, quantMap, nestedAbsmax, nestedMap, offset);
        (Type, BlockSize, NestedBlockSize, DType, OutFeatures, InFeatures, ComputeDType) = (type, blockSize, nestedBlockSize, dtype, outFeatures, inFeatures, compute);
    }

    /// <summary>Quantizes a dense [out, in] weight as bitsandbytes' quantize_4bit does (compress_statistics = <paramref name="doubleQuant"/>).</summary>
    public static FourBitWeight Quantize(Tensor weight, FourBitType type, bool doubleQuant, ScalarType compute)
    {
        var (packed, absmax) = BnbFunctional.Quantize4Bit(weight, type);
        var device = weight.device;
        var map = tensor(BnbCodes.Table(type), device: device);
        if (!doubleQuant)
            return new FourBitWeight(packed, absmax, map, null, null, 0, type, BnbFunctional.BlockSize4Bit, 0, weight.dtype, weight.shape[0], weight.shape[1], compute);
        using (absmax)
        {
            // bitsandbytes: offset = absmax.mean(); quantize_blockwise(absmax - offset, blocksize=256) with the dynamic map.
            // The mean is summed in float64 and rounded once: a float32 sum's last bit depends on the device's reduction
            // order, and this way CPU and CUDA write the same file.
            using var mean64 = absmax.to_type(ScalarType.Float64).mean();
            using var mean = mean64.to_type(ScalarType.Float32);
            var offset = mean.item<float>();
            using var centred = absmax - mean;
            var nestedMap = BnbCodes.DynamicMap(device);
            var (codes, nestedAbsmax) = BnbFunctional.QuantizeBlockwise8(centred, nestedMap);
            return new FourBitWeight(packed, codes, map, nestedAbsmax, nestedMap, offset, type, BnbFunctional.BlockSize4Bit, BnbFunctional.NestedBlockSize,
                weight.dtype, weight.shape[0], weight.shape[1], compute);
        }
    }

    /// <summary>The float32 absmax of every block (decoding the nested form).</summary>
    public Tensor BlockAbsmax()
    {
        if (NestedAbsmax is null) return Absmax.alias();
        using var decoded = BnbFunctional.DequantizeBlockwise8(Absmax, NestedAbsmax, NestedQuantMap!, NestedBlockSize);
        return decoded + NestedOffset;
    }

    /// <summary>The dequantized weight as bitsandbytes computes it: float32 code × absmax, cast to the stored dtype, then to the compute dtype.</summary>
    public Tensor Dequantize()
    {
        return FourBitKernels.Unavailable(Packed) is null ? FourBitKernels.Dequantize(this) : DequantizePortable();
    }

    /// <summary>
    /// float32 table value × block absmax for every element. Each packed byte indexes a 256-row table of its two values
    /// (high nibble first), so one int32 gather replaces two shifts, a stack and an int64 index tensor; the block scale is
    /// a broadcast multiply in place over [blocks, 64] rather than an absmax repeated per element. Same float32 products
    /// as element-wise code × absmax, so the result is bit-identical to the plain formula.
    /// </summary>
    Tensor DequantizeWith(Tensor bytes, Tensor absmax)
    {
        var n = OutFeatures * InFeatures;
        var blocks = absmax.numel();
        using var pairs = PairTable();
        using var index = bytes.flatten().to_type(ScalarType.Int32);
        using var gathered = pairs.index_select(0, index).view(-1);
        using var padded = gathered.numel() == blocks * BlockSize ? gathered.alias()
            : nn.functional.pad(gathered.narrow(0, 0, Math.Min(n, gathered.numel())), [0, blocks * BlockSize - Math.Min(n, gathered.numel())]);
        using var byBlock = padded.view(blocks, BlockSize);
        using var scale = absmax.to_type(ScalarType.Float32).unsqueeze(1);
        byBlock.mul_(scale);
        return padded.narrow(0, 0, n);
    }

    Tensor? _pairTable; // [256, 2] float32: (map[byte >> 4], map[byte & 15]); built once per weight

    /// <summary>The 256 × 2 table of the two values a packed byte holds.</summary>
    Tensor PairTable()
    {
        if (_pairTable is null)
        {
            using var scope = NewDisposeScope();
            var all = arange(256, dtype: ScalarType.Int64, device: QuantMap.device);
            var map = QuantMap.to_type(ScalarType.Float32);
            _pairTable = stack([map.index(all.bitwise_right_shift(4)), map.index(all.bitwise_and(15))], 1).DetachFromDisposeScope(); // owned by this weight, not by the caller's scope
        }
        return _pairTable.alias();
    }

    /// <inheritdoc />
    public Tensor? TryFusedLinear(Tensor x) => FourBitKernels.Unavailable(Packed) is null ? FourBitKernels.TryGemv(this, x) : null;

    /// <summary>Dequantized with tensor operations only (the reference the CUDA kernel is checked against).</summary>
    public Tensor DequantizePortable()
    {
        using var scope = NewDisposeScope();
        var absmax = BlockAbsmax();
        var flat = DequantizeWith(Packed, absmax);
        var w = flat.view(OutFeatures, InFeatures).to_type(DType);
        if (w.dtype != ComputeDType) w = w.to_type(ComputeDType);
        return w.MoveToOuterDisposeScope();
    }

    /// <summary>The quant state's JSON as bitsandbytes' QuantState.as_dict(packed=True) writes it (json.dumps of the non-tensor fields).</summary>
    public string QuantStateJson()
    {
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(TypeName(Type)).Append("\", \"blocksize\": ").Append(BlockSize)
          .Append(", \"dtype\": \"").Append(DTypes.Name(DType)).Append("\", \"shape\": [").Append(OutFeatures).Append(", ").Append(InFeatures).Append(']');
        if (NestedAbsmax is not null)
            sb.Append(", \"nested_blocksize\": ").Append(NestedBlockSize).Append(", \"nested_dtype\": \"float32\", \"nested_offset\": ")
              .Append(PythonFloat(NestedOffset));
        return sb.Append('}').ToString();
    }

    /// <summary>Python's repr of a float32 widened to a double (what .item() gives json.dumps).</summary>
    static string PythonFloat(float value)
    {
        var text = ((double)value).ToString("R", CultureInfo.InvariantCulture);
        if (text.Contains('E')) text = ((double)value).ToString("0.0################e+00", CultureInfo.InvariantCulture);
        return text.Contains('.') || text.Contains('e') ? text : text + ".0";
    }

    /// <summary>nf4 or fp4.</summary>
    public static string TypeName(FourBitType type) => type == FourBitType.Nf4 ? "nf4" : "fp4";

    /// <inheritdoc />
    public IEnumerable<(string Name, Tensor Tensor)> CheckpointTensors()
    {
        yield return ("weight", Packed);
        yield return ("weight.absmax", Absmax);
        yield return ("weight.quant_map", QuantMap);
        if (NestedAbsmax is not null)
        {
            yield return ("weight.nested_absmax", NestedAbsmax);
            yield return ("weight.nested_quant_map", NestedQuantMap!);
        }
        var json = Encoding.UTF8.GetBytes(QuantStateJson());
        yield return ("weight.quant_state.bitsandbytes__" + TypeName(Type), tensor(json, dtype: ScalarType.Byte));
    }

    /// <summary>Reads a Linear4bit weight from its serialized tensors (moved to <paramref name="device"/>).</summary>
    public static FourBitWeight Read(Func<string, Tensor?> read, string layer, JsonObject state, ScalarType compute, Device device, string file)
    {
        string Field(string name) => state[name]?.ToString() ?? throw new OspreyException($"{file}: the quant state of '{layer}.weight' lacks '{name}'; the checkpoint is not a bitsandbytes 4-bit one or is damaged.");
        var typeName = Field("quant_type");
        var type = typeName switch
        {
            "nf4" => FourBitType.Nf4,
            "fp4" => FourBitType.Fp4,
            _ => throw new OspreyException($"{file}: '{layer}.weight' has quant_type '{typeName}'; Osprey reads nf4 and fp4."),
        };
        Tensor Need(string suffix) => read(layer + "." + suffix)?.to(device) ?? throw new OspreyException($"{file} lacks '{layer}.{suffix}', which a bitsandbytes 4-bit weight needs; the checkpoint is incomplete.");
        var shape = (state["shape"] as JsonArray ?? throw new OspreyException($"{file}: the quant state of '{layer}.weight' has no shape list.")).Select(v => (long)v!).ToArray();
        if (shape.Length != 2) throw new OspreyException($"{file}: the quant state of '{layer}.weight' has shape [{string.Join(", ", shape)}]; a linear weight is 2-D.");
        var packed = Need("weight");
        if (packed.dtype != ScalarType.Byte)
            throw new OspreyException($"{file}: '{layer}.weight' is stored as {packed.dtype} (bnb_4bit_quant_storage); Osprey reads 4-bit weights stored as uint8, so re-export the model with the default storage.");
        var nested = state.ContainsKey("nested_blocksize");
        var dtype = DTypes.Parse(Field("dtype"), $"{file}: the quant state's dtype of '{layer}.weight'");
        return new FourBitWeight(packed, Need("weight.absmax"), Need("weight.quant_map").to_type(ScalarType.Float32),
            nested ? Need("weight.nested_absmax") : null, nested ? Need("weight.nested_quant_map") : null,
            nested ? (float)double.Parse(Field("nested_offset"), CultureInfo.InvariantCulture) : 0,
            type, int.Parse(Field("blocksize"), CultureInfo.InvariantCulture), nested ? int.Parse(Field("nested_blocksize"), CultureInfo.InvariantCulture) : 0,
            dtype, shape[0], shape[1], compute);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Packed.Dispose();
        Absmax.Dispose();
        QuantMap.Dispose();
        NestedAbsmax?.Dispose();
        NestedQuantMap?.Dispose();
        _pairTable?.Dispose();
    }
}
