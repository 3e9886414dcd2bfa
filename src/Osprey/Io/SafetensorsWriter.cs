using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Osprey.Io;

/// <summary>
/// Writes safetensors files and Hugging Face sharded checkpoints that Python's <c>safetensors</c> and
/// <c>transformers</c> load. Tensors are copied to the CPU and streamed to disk one at a time, so saving never needs
/// a second copy of the whole model in memory. Files appear under their final names only once complete.
/// </summary>
public static partial class SafetensorsWriter
{
    /// <summary>The metadata <c>transformers</c> writes; some loaders check it to know the tensors are PyTorch's.</summary>
    private static readonly IReadOnlyDictionary<string, string> s_defaultMetadata =
        new Dictionary<string, string> { ["format"] = "pt" };

    private const string TempSuffix = ".tmp";

    /// <summary>
    /// Writes one safetensors file: the tensors in the given order, their data back to back, and
    /// <c>__metadata__</c> first in the header (<c>{"format": "pt"}</c> when <paramref name="metadata"/> is null;
    /// none when it is empty). The file is written next to <paramref name="path"/> and moved into place when
    /// complete, replacing any file already there.
    /// </summary>
    /// <exception cref="ArgumentException">A name is repeated or reserved, or a tensor's dtype has no safetensors equivalent.</exception>
    public static void Write(
        string path,
        IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var temp = path + TempSuffix;
        try
        {
            WriteFile(temp, tensors.ToList(), metadata ?? s_defaultMetadata);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Saves tensors the way <c>save_pretrained</c> does: <c>{baseName}.safetensors</c> when they fit in one shard
    /// of <paramref name="maxShardBytes"/>, otherwise <c>{baseName}-00001-of-0000N.safetensors</c>, ... and
    /// <c>{baseName}.safetensors.index.json</c>. Shards are filled in the given order; a tensor larger than the limit
    /// gets a shard of its own. Files of an earlier save under the same base name that this save does not replace are
    /// deleted once the new files are all in place.
    /// </summary>
    /// <paramref name="storedDTypes"/> names tensors whose bytes are stored under another one-byte dtype than their
    /// TorchSharp type says (float8 weights held as uint8, which TorchSharp has no type for).
    /// <returns>The names (not paths) of the files written: the shards in order, then the index if there is one.</returns>
    /// <exception cref="ArgumentException">A name is repeated or reserved, or a tensor's dtype has no safetensors equivalent.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the last
    /// tensor was written; the temporary files are removed and the folder's final names are untouched.</exception>
    public static IReadOnlyList<string> WriteSharded(
        string directory,
        IEnumerable<KeyValuePair<string, Tensor>> tensors,
        long maxShardBytes,
        string baseName = "model",
        CancellationToken cancellationToken = default,
        IReadOnlyDictionary<string, string>? storedDTypes = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        ArgumentException.ThrowIfNullOrEmpty(baseName);

        var list = tensors.ToList();
        var plans = list.Select(pair => Plan(pair.Key, pair.Value, storedDTypes)).ToList();
        CheckNames(plans);
        var shards = SplitIntoShards(plans, maxShardBytes);

        var names = new List<string>();
        if (shards.Count == 1)
        {
            names.Add($"{baseName}.safetensors");
        }
        else
        {
            for (var i = 0; i < shards.Count; i++)
            {
                names.Add(string.Create(CultureInfo.InvariantCulture, $"{baseName}-{i + 1:D5}-of-{shards.Count:D5}.safetensors"));
            }
        }
        var indexName = $"{baseName}.safetensors.index.json";
        var written = new List<string>(names);
        if (shards.Count > 1)
        {
            written.Add(indexName);
        }

        Directory.CreateDirectory(directory);
        var temps = new List<string>();
        try
        {
            for (var i = 0; i < shards.Count; i++)
            {
                var temp = System.IO.Path.Combine(directory, names[i] + TempSuffix);
                temps.Add(temp);
                WriteFile(temp, shards[i].Select(index => list[index]).ToList(), s_defaultMetadata, cancellationToken, storedDTypes);
            }
            if (shards.Count > 1)
            {
                var temp = System.IO.Path.Combine(directory, indexName + TempSuffix);
                temps.Add(temp);
                var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
                for (var i = 0; i < shards.Count; i++)
                {
                    foreach (var index in shards[i])
                    {
                        weightMap[plans[index].Name] = names[i];
                    }
                }
                File.WriteAllBytes(temp, IndexJson(plans.Sum(plan => plan.ByteLength), weightMap));
            }

            // Past this point nothing is cancelled: the moves are quick and must all happen for the folder to be consistent.
            cancellationToken.ThrowIfCancellationRequested();
            // Shards first and the index last: a reader that looks at the folder mid-way still finds either the
            // old index over old shards or the new index over new shards.
            for (var i = 0; i < written.Count; i++)
            {
                File.Move(temps[i], System.IO.Path.Combine(directory, written[i]), overwrite: true);
            }
        }
        catch
        {
            foreach (var temp in temps)
            {
                TryDelete(temp);
            }
            throw;
        }

        RemoveStale(directory, baseName, written);
        return written;
    }

    /// <summary>
    /// Parses a <c>--max_shard_size</c> value as transformers and ms-swift accept it: a whole number of bytes, or
    /// one with a KB/MB/GB suffix (powers of 1000) or KiB/MiB/GiB suffix (powers of 1024), in any case, with an
    /// optional space before the unit.
    /// </summary>
    /// <exception cref="ArgumentException">The text is not such a size, or is not positive.</exception>
    public static long ParseSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var match = SizePattern().Match(text);
        if (match.Success
            && long.TryParse(match.Groups["number"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            && number > 0)
        {
            var multiplier = match.Groups["unit"].Value.ToUpperInvariant() switch
            {
                "" => 1L,
                "KB" => 1_000L,
                "MB" => 1_000_000L,
                "GB" => 1_000_000_000L,
                "KIB" => 1L << 10,
                "MIB" => 1L << 20,
                "GIB" => 1L << 30,
                _ => 0L,
            };
            if (multiplier > 0 && number <= long.MaxValue / multiplier)
            {
                return number * multiplier;
            }
        }
        throw new ArgumentException(
            $"'{text}' is not a size: give a positive whole number of bytes, optionally followed by KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 5GB or 500MiB.",
            nameof(text));
    }

    [GeneratedRegex(@"^\s*(?<number>[0-9]+)\s?(?<unit>[KMG]i?B)?\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"^-[0-9]+-of-[0-9]+\.safetensors$", RegexOptions.CultureInvariant)]
    private static partial Regex ShardSuffixPattern();

    /// <summary>What the header needs to know about one tensor, taken without touching its data.</summary>
    private sealed record TensorPlan(string Name, string DType, long[] Shape, long ByteLength);

    private static TensorPlan Plan(string name, Tensor tensor, IReadOnlyDictionary<string, string>? storedDTypes = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(tensor, $"tensors[\"{name}\"]");
        if (!SafetensorsDTypes.TryGetName(tensor.dtype, out var dtype))
        {
            throw new ArgumentException(
                $"The tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store as Osprey writes it (supported: {SafetensorsDTypes.SupportedList}); convert it first.",
                nameof(tensor));
        }
        if (storedDTypes is not null && storedDTypes.TryGetValue(name, out var stored))
        {
            if (SafetensorsDTypes.ElementSize(stored) != tensor.element_size())
                throw new ArgumentException($"The tensor '{name}' is {tensor.dtype} and cannot be stored as {stored}, whose elements have another size.", nameof(tensor));
            dtype = stored;
        }
        return new TensorPlan(name, dtype, tensor.shape, tensor.numel() * tensor.element_size());
    }

    private static void CheckNames(IReadOnlyList<TensorPlan> plans)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var plan in plans)
        {
            if (plan.Name == SafetensorsFile.MetadataKey)
            {
                throw new ArgumentException($"A tensor cannot be named '{SafetensorsFile.MetadataKey}': the format reserves that key for metadata.", "tensors");
            }
            if (!seen.Add(plan.Name))
            {
                throw new ArgumentException($"The tensor name '{plan.Name}' appears twice; each tensor in a checkpoint needs a unique name.", "tensors");
            }
        }
    }

    /// <summary>Greedy, in order, as transformers does: a new shard starts when the next tensor would overflow the current one.</summary>
    private static List<List<int>> SplitIntoShards(IReadOnlyList<TensorPlan> plans, long maxShardBytes)
    {
        var shards = new List<List<int>> { new() };
        long current = 0;
        for (var i = 0; i < plans.Count; i++)
        {
            var size = plans[i].ByteLength;
            if (shards[^1].Count > 0 && current + size > maxShardBytes)
            {
                shards.Add(new List<int>());
                current = 0;
            }
            shards[^1].Add(i);
            current += size;
        }
        return shards;
    }

    private static void WriteFile(
        string path,
        IReadOnlyList<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string> metadata,
        CancellationToken cancellationToken = default,
        IReadOnlyDictionary<string, string>? storedDTypes = null)
    {
        var plans = tensors.Select(pair => Plan(pair.Key, pair.Value, storedDTypes)).ToList();
        CheckNames(plans);
        var header = Header(plans, metadata);

        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
        Span<byte> length = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        for (var i = 0; i < tensors.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // One tensor at a time in its own scope, so at most one CPU copy (of a GPU or strided tensor) is alive.
            using var scope = NewDisposeScope();
            var cpu = tensors[i].Value.detach().cpu().contiguous();
            TensorBytes.WriteTo(cpu, plans[i].ByteLength, stream);
        }
        stream.Flush(flushToDisk: true);
    }

    /// <summary>The header JSON, padded with spaces so the data starts at a multiple of 8 as the format recommends.</summary>
    private static byte[] Header(IReadOnlyList<TensorPlan> plans, IReadOnlyDictionary<string, string> metadata)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(SafetensorsFile.MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var plan in plans)
            {
                json.WriteStartObject(plan.Name);
                json.WriteString("dtype", plan.DType);
                json.WriteStartArray("shape");
                foreach (var size in plan.Shape)
                {
                    json.WriteNumberValue(size);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + plan.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += plan.ByteLength;
            }
            json.WriteEndObject();
        }
        var padding = (int)((8 - (buffer.Length % 8)) % 8);
        for (var i = 0; i < padding; i++)
        {
            buffer.WriteByte((byte)' ');
        }
        return buffer.ToArray();
    }

    private static byte[] IndexJson(long totalSize, SortedDictionary<string, string> weightMap)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalSize);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap)
            {
                json.WriteString(name, file);
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.ToArray();
    }

    /// <summary>Deletes files of an earlier save under <paramref name="baseName"/> that this save did not overwrite.</summary>
    private static void RemoveStale(string directory, string baseName, IReadOnlyCollection<string> written)
    {
        var keep = new HashSet<string>(written, StringComparer.Ordinal);
        var single = $"{baseName}.safetensors";
        var index = $"{baseName}.safetensors.index.json";
        foreach (var path in Directory.EnumerateFiles(directory))
        {
            var name = System.IO.Path.GetFileName(path);
            if (keep.Contains(name))
            {
                continue;
            }
            var isOurs = name == single
                || name == index
                || (name.StartsWith(baseName, StringComparison.Ordinal) && ShardSuffixPattern().IsMatch(name.AsSpan(baseName.Length)));
            if (isOurs)
            {
                File.Delete(path);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Cleanup is best effort; the original error is the one worth reporting.
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
        }
    }
}
