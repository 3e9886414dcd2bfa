using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Osprey.Datasets;

/// <summary>
/// Encoded samples held flat (all ids in one array, offsets per sample), as the trainer reads them: <see cref="Count"/>
/// and an indexer returning (InputIds, Labels, PositionIds). Saved to and loaded from a compact binary file.
/// </summary>
public sealed class EncodedDataset : IReadOnlyList<EncodedSample>
{
    private const string Magic = "OSPENC01";
    private readonly long[] _offsets;
    private readonly int[] _ids;
    private readonly int[] _labels;
    private readonly int[]? _positions;
    // A vision-language dataset's images per sample (pixel values stay in memory; the binary cache holds tokens only).
    private IReadOnlyList<Osprey.Images.ProcessedImage>?[]? _images;

    private EncodedDataset(long[] offsets, int[] ids, int[] labels, int[]? positions)
    {
        _offsets = offsets;
        _ids = ids;
        _labels = labels;
        _positions = positions;
    }

    /// <summary>An empty dataset.</summary>
    public static EncodedDataset Empty { get; } = new([0], [], [], null);

    /// <summary>Number of samples.</summary>
    public int Count => _offsets.Length - 1;

    /// <summary>Total tokens.</summary>
    public long TokenCount => _offsets[^1];

    /// <summary>Whether samples carry position ids (packed).</summary>
    public bool HasPositionIds => _positions is not null;

    /// <summary>Sample <paramref name="index"/> (fresh arrays).</summary>
    public EncodedSample this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            var start = (int)_offsets[index];
            var end = (int)_offsets[index + 1];
            return new EncodedSample(_ids[start..end], _labels[start..end], _positions?[start..end]) { Images = _images?[index] };
        }
    }

    /// <summary>Collects samples (all with position ids or none).</summary>
    public static EncodedDataset FromSamples(IEnumerable<EncodedSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var list = samples as IReadOnlyList<EncodedSample> ?? samples.ToList();
        if (list.Count == 0) return Empty;
        var hasPositions = list[0].PositionIds is not null;
        var offsets = new long[list.Count + 1];
        for (var i = 0; i < list.Count; i++)
        {
            if ((list[i].PositionIds is not null) != hasPositions)
                throw new ArgumentException("Either every sample has position ids or none does.", nameof(samples));
            offsets[i + 1] = offsets[i] + list[i].Length;
        }
        if (offsets[^1] > Array.MaxLength) throw new OspreyException($"The dataset has {offsets[^1]} tokens, more than one array holds; split it.");
        var total = (int)offsets[^1];
        var ids = new int[total];
        var labels = new int[total];
        var positions = hasPositions ? new int[total] : null;
        for (var i = 0; i < list.Count; i++)
        {
            var s = list[i];
            if (s.Labels.Length != s.Length || (s.PositionIds is { } p && p.Length != s.Length))
                throw new ArgumentException($"Sample {i} has ids, labels and position ids of different lengths.", nameof(samples));
            s.InputIds.CopyTo(ids, offsets[i]);
            s.Labels.CopyTo(labels, offsets[i]);
            s.PositionIds?.CopyTo(positions!, offsets[i]);
        }
        var dataset = new EncodedDataset(offsets, ids, labels, positions);
        if (list.Any(s => s.Images is not null)) dataset._images = list.Select(s => s.Images).ToArray();
        return dataset;
    }

    /// <summary>
    /// Writes the dataset: "OSPENC01", int32 flags (1 = position ids), int64 count, int64 offsets[count+1], then
    /// int32 ids, labels (and position ids), all little-endian.
    /// </summary>
    public void Save(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> header = stackalloc byte[20];
        Encoding.ASCII.GetBytes(Magic, header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], HasPositionIds ? 1 : 0);
        BinaryPrimitives.WriteInt64LittleEndian(header[12..], Count);
        stream.Write(header);
        WriteArray<long>(stream, _offsets);
        WriteArray<int>(stream, _ids);
        WriteArray<int>(stream, _labels);
        if (_positions is not null) WriteArray<int>(stream, _positions);
    }

    /// <summary>Reads a file <see cref="Save"/> wrote; a damaged or foreign file throws <see cref="OspreyException"/>.</summary>
    public static EncodedDataset Load(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        Span<byte> header = stackalloc byte[20];
        if (stream.ReadAtLeast(header, 20, throwOnEndOfStream: false) < 20 || Encoding.ASCII.GetString(header[..8]) != Magic)
            throw new OspreyException($"{path} is not an Osprey encoded dataset; delete it to re-encode.");
        var flags = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        var count = BinaryPrimitives.ReadInt64LittleEndian(header[12..]);
        if (count < 0 || count >= Array.MaxLength) throw new OspreyException($"{path} has a damaged header; delete it to re-encode.");
        var offsets = ReadArray<long>(stream, (int)count + 1, path);
        var total = offsets[^1];
        if (offsets[0] != 0 || total < 0 || total > Array.MaxLength) throw new OspreyException($"{path} has damaged offsets; delete it to re-encode.");
        for (var i = 0; i < count; i++)
            if (offsets[i + 1] < offsets[i]) throw new OspreyException($"{path} has damaged offsets; delete it to re-encode.");
        var ids = ReadArray<int>(stream, (int)total, path);
        var labels = ReadArray<int>(stream, (int)total, path);
        var positions = (flags & 1) != 0 ? ReadArray<int>(stream, (int)total, path) : null;
        if (stream.Position != stream.Length) throw new OspreyException($"{path} has trailing bytes; delete it to re-encode.");
        return new EncodedDataset(offsets, ids, labels, positions);
    }

    private static void WriteArray<T>(Stream stream, T[] values) where T : unmanaged
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Encoded datasets are written on little-endian machines only.");
        stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static T[] ReadArray<T>(Stream stream, int count, string path) where T : unmanaged
    {
        var values = new T[count];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) < bytes.Length)
            throw new OspreyException($"{path} is cut short; delete it to re-encode.");
        return values;
    }

    /// <inheritdoc/>
    public IEnumerator<EncodedSample> GetEnumerator()
    {
        for (var i = 0; i < Count; i++) yield return this[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
