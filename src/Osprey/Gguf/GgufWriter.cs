using System.Text;

namespace Osprey.Gguf;

/// <summary>
/// Builds a GGUF v3 file: metadata key/values in the order added, then tensor infos, then the tensor data, each
/// tensor starting on a multiple of <c>general.alignment</c> (32 unless set). <see cref="Write"/> writes to a
/// temporary file beside the target and renames it, so a failed write never leaves a partial .gguf.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>GGUF's default alignment of tensor data.</summary>
    public const int DefaultAlignment = 32;

    readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    readonly List<(string Name, long[] Dims, GgmlType Type, long Bytes, Func<byte[]> Data)> _tensors = [];

    /// <summary>Metadata keys added so far.</summary>
    public IEnumerable<string> Keys => _metadata.Select(m => m.Key);

    /// <summary>Adds a scalar or string value (<paramref name="value"/> must match <paramref name="type"/>'s .NET type).</summary>
    public GgufWriter Add(string key, GgufValueType type, object value)
    {
        if (_metadata.Any(m => m.Key == key)) throw new ArgumentException($"metadata key '{key}' is added twice.", nameof(key));
        _metadata.Add((key, type, value));
        return this;
    }

    /// <summary>Adds a string.</summary>
    public GgufWriter Add(string key, string value) => Add(key, GgufValueType.String, value);

    /// <summary>Adds a uint32.</summary>
    public GgufWriter Add(string key, uint value) => Add(key, GgufValueType.UInt32, value);

    /// <summary>Adds a float32.</summary>
    public GgufWriter Add(string key, float value) => Add(key, GgufValueType.Float32, value);

    /// <summary>Adds a bool.</summary>
    public GgufWriter Add(string key, bool value) => Add(key, GgufValueType.Bool, value);

    /// <summary>Adds an array whose elements have type <paramref name="elementType"/>.</summary>
    public GgufWriter AddArray<T>(string key, GgufValueType elementType, IReadOnlyList<T> values) =>
        Add(key, GgufValueType.Array, new GgufArray(elementType, values.Cast<object>().ToArray()));

    /// <summary>Adds a tensor already encoded as <paramref name="type"/>; <paramref name="dims"/> in ggml order (innermost first).</summary>
    public GgufWriter AddTensor(string name, long[] dims, GgmlType type, byte[] data) => AddTensor(name, dims, type, () => data, data.Length);

    /// <summary>
    /// Adds a tensor whose encoded bytes <paramref name="data"/> makes while the file is written (so a large model is
    /// never held encoded in memory all at once); it must return <paramref name="byteCount"/> bytes.
    /// </summary>
    public GgufWriter AddTensor(string name, long[] dims, GgmlType type, Func<byte[]> data, long byteCount)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor '{name}' is added twice.", nameof(name));
        if (dims.Length == 0 || dims.Length > 4) throw new ArgumentException($"tensor '{name}' has {dims.Length} dimensions; GGUF holds 1 to 4.", nameof(dims));
        if (dims[0] % GgmlCodec.BlockValues(type) != 0) throw new ArgumentException($"tensor '{name}': rows of {dims[0]} are not whole {type} blocks.", nameof(dims));
        var expected = GgmlCodec.ByteCount(type, dims.Aggregate(1L, (a, b) => a * b));
        if (byteCount != expected) throw new ArgumentException($"tensor '{name}' has {byteCount} bytes; {type} {string.Join("x", dims)} needs {expected}.", nameof(byteCount));
        _tensors.Add((name, dims, type, byteCount, data));
        return this;
    }

    /// <summary>Writes the file to <paramref name="path"/> (through a temporary file and a rename).</summary>
    public void Write(string path)
    {
        var alignment = _metadata.FirstOrDefault(m => m.Key == "general.alignment").Value is uint a ? (int)a : DefaultAlignment;
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var tmp = path + ".tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(0x46554747u); // "GGUF" little-endian
                w.Write(3u);
                w.Write((ulong)_tensors.Count);
                w.Write((ulong)_metadata.Count);
                foreach (var (key, type, value) in _metadata)
                {
                    WriteString(w, key);
                    w.Write((uint)type);
                    WriteValue(w, type, value);
                }
                long offset = 0;
                foreach (var (name, dims, type, bytes, _) in _tensors)
                {
                    WriteString(w, name);
                    w.Write((uint)dims.Length);
                    foreach (var d in dims) w.Write((ulong)d);
                    w.Write((uint)type);
                    w.Write((ulong)offset);
                    offset = Align(offset + bytes, alignment);
                }
                Pad(w, alignment);
                foreach (var (name, _, _, bytes, data) in _tensors)
                {
                    var encoded = data();
                    if (encoded.Length != bytes) throw new InvalidOperationException($"tensor '{name}' produced {encoded.Length} bytes instead of {bytes}.");
                    w.Write(encoded);
                    Pad(w, alignment);
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    static long Align(long n, int alignment) => (n + alignment - 1) / alignment * alignment;

    static void Pad(BinaryWriter w, int alignment)
    {
        var position = w.BaseStream.Position;
        for (var i = position; i < Align(position, alignment); i++) w.Write((byte)0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(value)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(value)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(value)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(value)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(value)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(value)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(value)); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(value)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(value)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(value)); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Items.Count);
                foreach (var item in array.Items) WriteValue(w, array.ElementType, item);
                break;
            default: throw new ArgumentException($"unknown GGUF value type {type}.", nameof(type));
        }
    }
}
