namespace Osprey.Gguf;

/// <summary>
/// One tensor of a GGUF file. <paramref name="Dims"/> are in ggml order (innermost first: a Hugging Face weight
/// [out, in] is [in, out] here); <paramref name="Offset"/> is relative to the start of the data section.
/// </summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Dims, GgmlType Type, long Offset)
{
    /// <summary>Number of values.</summary>
    public long Count => Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>Bytes of data.</summary>
    public long ByteCount => GgmlCodec.ByteCount(Type, Count);

    /// <summary>The shape in PyTorch order (outermost first).</summary>
    public long[] TorchShape => Dims.Reverse().ToArray();
}
