namespace Osprey.Io;

/// <summary>One tensor's header entry in a safetensors file.</summary>
/// <param name="Name">The tensor name, e.g. <c>model.embed_tokens.weight</c>.</param>
/// <param name="DType">The safetensors dtype string, e.g. <c>F32</c>, <c>BF16</c>, <c>I64</c>.</param>
/// <param name="Shape">The dimensions; empty for a 0-d scalar.</param>
/// <param name="Begin">Start of the tensor's bytes, relative to the data section (byte 8 + header length).</param>
/// <param name="End">End (exclusive) of the tensor's bytes, relative to the data section.</param>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>The tensor's size in bytes.</summary>
    public long ByteLength => End - Begin;
}
