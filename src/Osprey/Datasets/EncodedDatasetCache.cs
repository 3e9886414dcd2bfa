namespace Osprey.Datasets;

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
