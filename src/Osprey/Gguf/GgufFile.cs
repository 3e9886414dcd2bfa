using System.Text;

namespace Osprey.Gguf;

/// <summary>
/// A GGUF file opened for reading (versions 2 and 3): its metadata, its tensor infos, and each tensor's bytes or
/// values decoded to float32. The header is read once; tensor data is read from the file on request.
/// </summary>
public sealed class GgufFile
{
    const long MaxStringBytes = 1L << 30;

    /// <summary>The file read.</summary>
    public string Path { get; }
    /// <summary>The GGUF version in the header.</summary>
    public uint Version { get; }
    /// <summary>Metadata values by key: .NET scalars, strings, or <see cref="GgufArray"/>.</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }
    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    /// <summary>Where the data section starts.</summary>
    public long DataOffset { get; }
    /// <summary>The tensor-data alignment (general.alignment, default 32).</summary>
    public int Alignment { get; }

    GgufFile(string path, uint version, Dictionary<string, object> metadata, List<GgufTensorInfo> tensors, long dataOffset, int alignment)
    {
        Path = path;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        DataOffset = dataOffset;
        Alignment = alignment;
    }

    /// <summary>Reads the header, metadata and tensor infos of <paramref name="path"/>.</summary>
    public static GgufFile Open(string path)
    {
        if (!File.Exists(path)) throw new OspreyException($"{path} does not exist; pass a .gguf file.");
        using var stream = File.OpenRead(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        string field = "magic";
        try
        {
            if (r.ReadUInt32() != 0x46554747u) throw new OspreyException($"{path} is not a GGUF file (it does not start with 'GGUF').");
            field = "version";
            var version = r.ReadUInt32();
            if (version is not (2 or 3)) throw new OspreyException($"{path}: GGUF version {version} is not supported (2 and 3 are); convert it with a current llama.cpp.");
            field = "tensor_count";
            var tensorCount = checked((long)r.ReadUInt64());
            var kvCount = checked((long)r.ReadUInt64());
            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            for (long i = 0; i < kvCount; i++)
            {
                field = $"metadata entry {i}";
                var key = ReadString(r);
                field = $"metadata '{key}'";
                var type = (GgufValueType)r.ReadUInt32();
                metadata[key] = ReadValue(r, type);
            }
            var alignment = metadata.TryGetValue("general.alignment", out var a) ? Convert.ToInt32(a) : GgufWriter.DefaultAlignment;
            if (alignment <= 0 || (alignment & (alignment - 1)) != 0) throw new OspreyException($"{path}: general.alignment is {alignment}; it must be a power of two.");
            var tensors = new List<GgufTensorInfo>();
            for (long i = 0; i < tensorCount; i++)
            {
                field = $"tensor info {i}";
                var name = ReadString(r);
                field = $"tensor '{name}'";
                var nDims = r.ReadUInt32();
                if (nDims is 0 or > 4) throw new OspreyException($"{path}: tensor '{name}' has {nDims} dimensions; GGUF allows 1 to 4.");
                var dims = new long[nDims];
                for (int d = 0; d < nDims; d++) dims[d] = checked((long)r.ReadUInt64());
                var type = (GgmlType)r.ReadUInt32();
                _ = GgmlCodec.BlockValues(type); // unsupported types fail here, naming the type
                var offset = checked((long)r.ReadUInt64());
                tensors.Add(new GgufTensorInfo(name, dims, type, offset));
            }
            var dataOffset = (stream.Position + alignment - 1) / alignment * alignment;
            foreach (var t in tensors)
                if (dataOffset + t.Offset + t.ByteCount > stream.Length)
                    throw new OspreyException($"{path}: tensor '{t.Name}' runs past the end of the file; the file is truncated.");
            return new GgufFile(path, version, metadata, tensors, dataOffset, alignment);
        }
        catch (EndOfStreamException)
        {
            throw new OspreyException($"{path} ends inside the header ({field}); the file is truncated.");
        }
        catch (OspreyException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new OspreyException($"{path}: {field}: {e.Message}");
        }
    }

    /// <summary>The tensor named <paramref name="name"/>.</summary>
    public GgufTensorInfo Tensor(string name) =>
        Tensors.FirstOrDefault(t => t.Name == name) ?? throw new OspreyException($"{Path} has no tensor '{name}'.");

    /// <summary>The encoded bytes of a tensor, as stored.</summary>
    public byte[] ReadBytes(GgufTensorInfo tensor)
    {
        using var stream = File.OpenRead(Path);
        stream.Position = DataOffset + tensor.Offset;
        var bytes = new byte[tensor.ByteCount];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>A tensor's values decoded (dequantized) to float32, in row-major order.</summary>
    public float[] ReadFloats(GgufTensorInfo tensor) => GgmlCodec.Decode(tensor.Type, ReadBytes(tensor), tensor.Count);

    /// <summary>A metadata value, or null when the key is absent.</summary>
    public object? Get(string key) => Metadata.TryGetValue(key, out var v) ? v : null;

    /// <summary>A string metadata value; throws naming the key when absent or not a string.</summary>
    public string RequireString(string key) =>
        Get(key) as string ?? throw new OspreyException($"{Path} lacks the string metadata '{key}'; the file was not written for llama.cpp.");

    static string ReadString(BinaryReader r)
    {
        var length = r.ReadUInt64();
        if (length > MaxStringBytes) throw new OspreyException($"a string of {length} bytes is implausible; the file is damaged.");
        var bytes = r.ReadBytes((int)length);
        if (bytes.Length != (int)length) throw new EndOfStreamException();
        return Encoding.UTF8.GetString(bytes);
    }

    static object ReadValue(BinaryReader r, GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => r.ReadSByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => r.ReadByte() != 0,
        GgufValueType.String => ReadString(r),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        GgufValueType.Array => ReadArray(r),
        _ => throw new OspreyException($"value type {(uint)type} is not a GGUF type; the file is damaged."),
    };

    static GgufArray ReadArray(BinaryReader r)
    {
        var elementType = (GgufValueType)r.ReadUInt32();
        var count = r.ReadUInt64();
        if (count > int.MaxValue) throw new OspreyException($"an array of {count} items is implausible; the file is damaged.");
        var items = new object[count];
        for (ulong i = 0; i < count; i++) items[i] = ReadValue(r, elementType);
        return new GgufArray(elementType, items);
    }
}
