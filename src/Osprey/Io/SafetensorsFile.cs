using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Unicode;
using System.Text.Json;
using static TorchSharp.torch;

namespace Osprey.Io;

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped read-only. Opening parses and validates the header only; tensor
/// bytes are copied from the mapping into a fresh tensor when asked for, so a checkpoint far larger than RAM can be
/// opened and read tensor by tensor.
/// </summary>
/// <remarks>
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
/// <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets relative to byte 8 + N) plus an optional
/// <c>"__metadata__"</c> string map, then the data.
/// </remarks>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>The header key that carries the free-form string metadata instead of a tensor.</summary>
    internal const string MetadataKey = "__metadata__";

    // The reference implementation refuses headers over 100 MB; a bigger one means a corrupt length field, and
    // the limit keeps us from allocating gigabytes for a header on a damaged file.
    private const long MaxHeaderLength = 100_000_000;

    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, SafetensorsEntry> _byName;
    private readonly long _dataStart;
    private byte* _pointer;

    private SafetensorsFile(
        string path,
        MemoryMappedFile mapping,
        MemoryMappedViewAccessor view,
        byte* pointer,
        long dataStart,
        IReadOnlyDictionary<string, string> metadata,
        IReadOnlyList<SafetensorsEntry> entries)
    {
        Path = path;
        _mapping = mapping;
        _view = view;
        _pointer = pointer;
        _dataStart = dataStart;
        Metadata = metadata;
        Entries = entries;
        _byName = entries.ToDictionary(entry => entry.Name, StringComparer.Ordinal);
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> map; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors in the order their bytes appear in the file.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="OspreyFormatException">The file is not a valid safetensors file.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
        {
            // Tensor bytes are little-endian on disk and are copied without conversion.
            throw new PlatformNotSupportedException("Osprey reads safetensors files only on little-endian machines.");
        }
        path = System.IO.Path.GetFullPath(path);
        var info = new FileInfo(path);
        // Hugging Face cache snapshots are symbolic links into blobs/: the size is the target's, not the link's.
        if (info.Exists && info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) info = target;
        var fileLength = info.Exists
            ? info.Length
            : throw new FileNotFoundException($"The safetensors file {path} does not exist.", path);
        if (fileLength < 8)
        {
            // Also rules out an empty file, which cannot be memory-mapped.
            throw Bad(path, $"it is {fileLength} bytes long, shorter than the 8-byte header length field; the file is truncated, download or save it again");
        }

        var mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        var acquired = false;
        try
        {
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            acquired = true;
            // The view can start before the requested offset when the offset is not page-aligned; ours is 0, but
            // honouring PointerOffset keeps this correct regardless.
            pointer += view.PointerOffset;

            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(pointer, 8));
            if (headerLength > (ulong)(fileLength - 8))
            {
                throw Bad(path, $"its header claims {headerLength} bytes but only {fileLength - 8} follow the length field; the file is truncated or not a safetensors file, download or save it again");
            }
            if (headerLength > MaxHeaderLength)
            {
                throw Bad(path, $"its header claims {headerLength} bytes, more than the {MaxHeaderLength}-byte limit of the format; the file is corrupt or not a safetensors file");
            }
            var dataStart = 8 + (long)headerLength;
            var header = new ReadOnlySpan<byte>(pointer + 8, (int)headerLength).ToArray();
            var (metadata, entries) = ParseHeader(path, header, fileLength - dataStart);
            return new SafetensorsFile(path, mapping, view, pointer, dataStart, metadata, entries);
        }
        catch
        {
            if (acquired)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }
            view?.Dispose();
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of a tensor.</summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name is in the file.</exception>
    public SafetensorsEntry this[string name] =>
        _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new KeyNotFoundException($"The tensor '{name}' is not in {Path}.");

    /// <summary>
    /// Reads a tensor into a new contiguous CPU tensor of the stored dtype and shape, which owns its memory (it
    /// stays valid after this file is disposed). It registers on the caller's current dispose scope, if any.
    /// </summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name is in the file.</exception>
    /// <exception cref="OspreyFormatException">The tensor's dtype has no TorchSharp equivalent.</exception>
    public Tensor ReadTensor(string name)
    {
        var entry = this[name];
        if (!SafetensorsDTypes.TryGetScalarType(entry.DType, out var scalarType))
        {
            throw Bad(Path, $"the tensor '{name}' has dtype {entry.DType}, which Osprey cannot load (supported: {SafetensorsDTypes.SupportedList}); convert the checkpoint to a supported dtype such as BF16 or F32");
        }
        var pointer = _pointer;
        ObjectDisposedException.ThrowIf(pointer is null, this);
        var tensor = empty(entry.Shape, scalarType);
        try
        {
            TensorBytes.CopyInto(pointer + _dataStart + entry.Begin, entry.ByteLength, tensor);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return tensor;
    }

    /// <summary>
    /// Reads a tensor of a one-byte dtype (such as F8_E4M3, which TorchSharp has no type for) as its raw bytes: a new
    /// uint8 CPU tensor of the stored shape; the caller decodes them.
    /// </summary>
    public Tensor ReadBytes(string name)
    {
        var entry = this[name];
        if (SafetensorsDTypes.ElementSize(entry.DType) != 1)
            throw Bad(Path, $"the tensor '{name}' has dtype {entry.DType}, not a one-byte dtype; the checkpoint does not match its quantization_config");
        var pointer = _pointer;
        ObjectDisposedException.ThrowIf(pointer is null, this);
        var tensor = empty(entry.Shape, ScalarType.Byte);
        try
        {
            TensorBytes.CopyInto(pointer + _dataStart + entry.Begin, entry.ByteLength, tensor);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return tensor;
    }

    /// <summary>Unmaps the file. Tensors already read stay valid.</summary>
    public void Dispose()
    {
        if (_pointer is null)
        {
            return;
        }
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping.Dispose();
    }

    private static (IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<SafetensorsEntry> Entries) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        if (!Utf8.IsValid(header))
        {
            // Checked up front because JsonDocument only notices bad UTF-8 when a string is decoded.
            throw Bad(path, "its header is not valid UTF-8; the file is corrupt, download or save it again");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new OspreyFormatException(
                $"Cannot read the safetensors file {path}: its header is not valid JSON ({e.Message}); the file is corrupt, download or save it again.", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Bad(path, "its header is not a JSON object; the file is corrupt, download or save it again");
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<SafetensorsEntry>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw Bad(path, $"its header names '{property.Name}' twice; the file is corrupt, download or save it again");
                }
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                }
                else
                {
                    entries.Add(ReadEntry(path, property.Name, property.Value, dataLength));
                }
            }
            // OrderBy is stable: zero-byte tensors sharing an offset keep their header order.
            return (metadata, entries.OrderBy(entry => entry.Begin).ThenBy(entry => entry.End).ToArray());
        }
    }

    private static void ReadMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Bad(path, $"its \"{MetadataKey}\" is not a JSON object of strings; the file is corrupt or was written by a non-conforming tool");
        }
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw Bad(path, $"its \"{MetadataKey}\" value for '{item.Name}' is not a string; the file is corrupt or was written by a non-conforming tool");
            }
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(string path, string name, JsonElement element, long dataLength)
    {
        string Problem(string what) => $"the header entry of tensor '{name}' {what}; the file is corrupt, download or save it again";

        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Bad(path, Problem("is not a JSON object"));
        }
        if (!element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw Bad(path, Problem("has no \"dtype\" string"));
        }
        var dtype = dtypeElement.GetString()!;

        if (!element.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw Bad(path, Problem("has no \"shape\" array"));
        }
        var shape = new long[shapeElement.GetArrayLength()];
        var index = 0;
        foreach (var dimension in shapeElement.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out var size) || size < 0)
            {
                throw Bad(path, Problem("has a shape that is not a list of non-negative integers"));
            }
            shape[index++] = size;
        }

        if (!element.TryGetProperty("data_offsets", out var offsetsElement)
            || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
        {
            throw Bad(path, Problem("has no \"data_offsets\" pair"));
        }
        var begin = offsetsElement[0];
        var end = offsetsElement[1];
        if (begin.ValueKind != JsonValueKind.Number || !begin.TryGetInt64(out var beginOffset) || beginOffset < 0
            || end.ValueKind != JsonValueKind.Number || !end.TryGetInt64(out var endOffset) || endOffset < beginOffset)
        {
            throw Bad(path, Problem("has data_offsets that are not two ascending non-negative integers"));
        }
        if (endOffset > dataLength)
        {
            throw Bad(path, $"the tensor '{name}' ends at data byte {endOffset} but the data section has only {dataLength} bytes; the file is truncated, download or save it again");
        }

        if (SafetensorsDTypes.ElementSize(dtype) is { } elementSize)
        {
            long expected;
            try
            {
                expected = checked(shape.Aggregate(1L, (product, size) => product * size) * elementSize);
            }
            catch (OverflowException)
            {
                throw Bad(path, Problem("has a shape too large to address"));
            }
            if (expected != endOffset - beginOffset)
            {
                throw Bad(path, $"the tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) needs {expected} bytes but its data_offsets span {endOffset - beginOffset}; the file is corrupt, download or save it again");
            }
        }
        // An unknown dtype string is left for ReadTensor to reject, so one exotic tensor does not make the
        // rest of the file unreadable.
        return new SafetensorsEntry(name, dtype, shape, beginOffset, endOffset);
    }

    private static OspreyFormatException Bad(string path, string problem) =>
        new($"Cannot read the safetensors file {path}: {problem}.");
}
