using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
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
            return new EncodedSample(_ids[start..end], _labels[start..end], _positions?[start..end]);
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
        return new EncodedDataset(offsets, ids, labels, positions);
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

/// <summary>Training and validation samples of one encoding.</summary>
public sealed record EncodedDatasets(EncodedDataset Train, EncodedDataset Validation)
{
    /// <summary>
    /// Writes a cached-dataset folder (train.bin, val.bin and an optional info.txt), as ms-swift's
    /// <c>export --to_cached_dataset</c> output for <c>--cached_dataset</c>: written beside it under a temporary
    /// name and renamed into place; an existing folder is replaced.
    /// </summary>
    public void SaveFolder(string folder, string? info = null)
    {
        var full = Path.GetFullPath(folder);
        var parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            Train.Save(Path.Combine(temp, "train.bin"));
            Validation.Save(Path.Combine(temp, "val.bin"));
            if (info is not null) File.WriteAllText(Path.Combine(temp, "info.txt"), info);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(temp, full);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Reads a folder <see cref="SaveFolder"/> (or the cache) wrote.</summary>
    public static EncodedDatasets LoadFolder(string folder)
    {
        var train = Path.Combine(folder, "train.bin");
        if (!File.Exists(train)) throw new OspreyException($"{folder} has no train.bin; pass a folder written by osprey encode --to_cached_dataset.");
        var val = Path.Combine(folder, "val.bin");
        return new EncodedDatasets(EncodedDataset.Load(train), File.Exists(val) ? EncodedDataset.Load(val) : EncodedDataset.Empty);
    }
}

/// <summary>
/// Builds the content-addressed key of an encoding: every input that changes the samples. Dataset files count by
/// full path, size and modification time (<see cref="AddFile"/>) or by content (<see cref="AddFileContent"/>).
/// </summary>
public sealed class EncodingCacheKey
{
    private readonly StringBuilder _text = new("osprey-encoded-v1\n");

    /// <summary>Adds a named value.</summary>
    public EncodingCacheKey Add(string name, string? value)
    {
        _text.Append(name).Append('=').Append(value is null ? "<null>" : value.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
        return this;
    }

    /// <summary>Adds a file by path, size and modification time (cheap; an edited file changes its mtime).</summary>
    public EncodingCacheKey AddFile(string path)
    {
        var info = new FileInfo(path);
        return Add("file", info.Exists
            ? $"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}"
            : $"{Path.GetFullPath(path)}|missing");
    }

    /// <summary>Adds a file by the SHA-256 of its contents (for small files such as tokenizers).</summary>
    public EncodingCacheKey AddFileContent(string path)
    {
        if (!File.Exists(path)) return Add("content", Path.GetFileName(path) + "|missing");
        using var stream = File.OpenRead(path);
        return Add("content", Path.GetFileName(path) + "|" + Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    /// <summary>
    /// Adds a --dataset entry (<c>path[:subset][#N]</c>): the files it names (a folder's files recursively) by
    /// <see cref="AddFile"/>, or the entry itself when it is no local path (a hub id).
    /// </summary>
    public EncodingCacheKey AddDatasetEntry(string entry)
    {
        Add("dataset", entry);
        foreach (var candidate in Candidates(entry))
        {
            if (File.Exists(candidate)) return AddFile(candidate);
            if (Directory.Exists(candidate))
            {
                foreach (var f in Directory.EnumerateFiles(candidate, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)) AddFile(f);
                return this;
            }
        }
        return this;
    }

    private static IEnumerable<string> Candidates(string entry)
    {
        yield return entry;
        var hash = entry.LastIndexOf('#');
        var noCount = hash > 0 ? entry[..hash] : entry;
        yield return noCount;
        var colon = noCount.LastIndexOf(':');
        if (colon > 1) yield return noCount[..colon]; // not a Windows drive letter
    }

    /// <summary>Adds the tokenizer files of a model folder by content (tokenizer*, vocab*, merges*, special_tokens_map*, added_tokens*, chat_template*).</summary>
    public EncodingCacheKey AddTokenizerFolder(string folder)
    {
        string[] prefixes = ["tokenizer", "vocab", "merges", "special_tokens_map", "added_tokens", "chat_template", "spiece", "sentencepiece"];
        var files = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder).Where(f => prefixes.Any(p => Path.GetFileName(f).StartsWith(p, StringComparison.OrdinalIgnoreCase))).Order(StringComparer.Ordinal)
            : Enumerable.Empty<string>();
        foreach (var f in files) AddFileContent(f);
        return this;
    }

    /// <summary>The canonical text of everything added.</summary>
    public override string ToString() => _text.ToString();

    /// <summary>The key: hex SHA-256 of the canonical text (first 32 chars).</summary>
    public string Hash => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_text.ToString())))[..32];
}

/// <summary>
/// Encoded datasets reused across runs, under <c>$XDG_CACHE_HOME/osprey/encoded/&lt;key&gt;/</c> (default
/// <c>~/.cache/osprey/encoded</c>): train.bin, val.bin and key.txt (what the key was made of). Entries are written to
/// a temporary folder and renamed into place, so a reader never sees half an entry.
/// </summary>
public sealed class EncodedDatasetCache(string? root = null)
{
    /// <summary>The cache folder.</summary>
    public string Root { get; } = root ?? DefaultRoot;

    /// <summary><c>$XDG_CACHE_HOME/osprey/encoded</c>, else <c>~/.cache/osprey/encoded</c>.</summary>
    public static string DefaultRoot
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "osprey", "encoded");
        }
    }

    /// <summary>The entry folder of a key.</summary>
    public string EntryPath(EncodingCacheKey key) => Path.Combine(Root, key.Hash);

    /// <summary>The cached datasets of <paramref name="key"/>, or null when absent or unreadable.</summary>
    public EncodedDatasets? TryLoad(EncodingCacheKey key)
    {
        var dir = EntryPath(key);
        var train = Path.Combine(dir, "train.bin");
        var val = Path.Combine(dir, "val.bin");
        if (!File.Exists(train) || !File.Exists(val)) return null;
        try
        {
            return new EncodedDatasets(EncodedDataset.Load(train), EncodedDataset.Load(val));
        }
        catch (Exception e) when (e is OspreyException or IOException)
        {
            return null;
        }
    }

    /// <summary>Stores datasets under <paramref name="key"/> (temp folder + rename); returns the entry folder.</summary>
    public string Store(EncodingCacheKey key, EncodedDatasets datasets)
    {
        Directory.CreateDirectory(Root);
        var dir = EntryPath(key);
        var temp = Path.Combine(Root, $".tmp-{key.Hash}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            datasets.Train.Save(Path.Combine(temp, "train.bin"));
            datasets.Validation.Save(Path.Combine(temp, "val.bin"));
            File.WriteAllText(Path.Combine(temp, "key.txt"), key.ToString());
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); // a damaged entry TryLoad refused
            Directory.Move(temp, dir);
        }
        catch (IOException) when (Directory.Exists(dir))
        {
            // Another process stored the same key first: its entry is as good as ours.
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return dir;
    }

    /// <summary>The cached datasets of <paramref name="key"/>, or <paramref name="build"/>'s, stored for next time.</summary>
    public EncodedDatasets GetOrCreate(EncodingCacheKey key, Func<EncodedDatasets> build, out bool hit)
    {
        ArgumentNullException.ThrowIfNull(build);
        var cached = TryLoad(key);
        hit = cached is not null;
        if (cached is not null) return cached;
        var built = build();
        Store(key, built);
        return built;
    }
}
