using Osprey.Datasets;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;

namespace Osprey.Tests.Datasets;

/// <summary><see cref="EncodedDataset"/> files and the content-addressed <see cref="EncodedDatasetCache"/>.</summary>
public sealed class EncodedDatasetCacheTests
{
    private static readonly Lazy<Tokenizer> Qwen3 = new(() => Tokenizer.Load(NpmTokenizers.Folder("qwen3")));

    private static IReadOnlyList<EncodedSample> Encode(int rows, bool packing = false) =>
        new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 96, Truncation = Osprey.Templates.TruncationStrategy.Right, Packing = packing })
            .EncodeAll(EncodingTests.ManyRows(rows));

    private static void AssertSame(IReadOnlyList<EncodedSample> expected, EncodedDataset actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].InputIds, actual[i].InputIds);
            Assert.Equal(expected[i].Labels, actual[i].Labels);
            Assert.Equal(expected[i].PositionIds, actual[i].PositionIds);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Save_and_load_round_trip_exactly(bool packing)
    {
        using var dir = new TempDirectory();
        var samples = Encode(200, packing);
        var ds = EncodedDataset.FromSamples(samples);
        AssertSame(samples, ds);
        ds.Save(dir.File("d.bin"));
        var back = EncodedDataset.Load(dir.File("d.bin"));
        AssertSame(samples, back);
        Assert.Equal(packing, back.HasPositionIds);
        Assert.Equal(samples.Sum(s => (long)s.Length), back.TokenCount);
    }

    [Fact]
    public void Damaged_files_are_refused_with_a_message()
    {
        using var dir = new TempDirectory();
        EncodedDataset.FromSamples(Encode(10)).Save(dir.File("d.bin"));
        var bytes = File.ReadAllBytes(dir.File("d.bin"));
        File.WriteAllBytes(dir.File("cut.bin"), bytes[..(bytes.Length - 3)]);
        Assert.Contains("cut short", Assert.Throws<OspreyException>(() => EncodedDataset.Load(dir.File("cut.bin"))).Message);
        File.WriteAllText(dir.File("other.bin"), "hello world, not a dataset");
        Assert.Contains("not an Osprey encoded dataset", Assert.Throws<OspreyException>(() => EncodedDataset.Load(dir.File("other.bin"))).Message);
    }

    private static EncodingCacheKey Key(string dataFile, string flags = "max_length=96") =>
        new EncodingCacheKey().AddDatasetEntry(dataFile).AddTokenizerFolder(NpmTokenizers.Folder("qwen3")).Add("encoding", flags);

    [Fact]
    public void Second_run_hits_and_returns_identical_samples_changed_inputs_miss()
    {
        using var dir = new TempDirectory();
        var data = dir.File("train.jsonl");
        File.WriteAllText(data, "{\"messages\": []}\n");
        var cache = new EncodedDatasetCache(dir.File("cache"));
        var samples = Encode(100);
        var builds = 0;
        EncodedDatasets Build()
        {
            builds++;
            return new EncodedDatasets(EncodedDataset.FromSamples(samples), EncodedDataset.FromSamples(samples.Take(3)));
        }

        cache.GetOrCreate(Key(data), Build, out var hit);
        Assert.False(hit);
        var again = cache.GetOrCreate(Key(data), Build, out hit);
        Assert.True(hit);
        Assert.Equal(1, builds);
        AssertSame(samples, again.Train);
        AssertSame(samples.Take(3).ToList(), again.Validation);
        Assert.True(File.Exists(Path.Combine(cache.EntryPath(Key(data)), "key.txt")));
        Assert.DoesNotContain(Directory.GetDirectories(cache.Root), d => Path.GetFileName(d).StartsWith(".tmp", StringComparison.Ordinal));

        // A flag change misses.
        cache.GetOrCreate(Key(data, "max_length=97"), Build, out hit);
        Assert.False(hit);
        // An edited file (new size and mtime) misses.
        File.AppendAllText(data, "{\"messages\": [1]}\n");
        File.SetLastWriteTimeUtc(data, DateTime.UtcNow.AddMinutes(1));
        cache.GetOrCreate(Key(data), Build, out hit);
        Assert.False(hit);
        Assert.Equal(3, builds);
        // A touched file with the same content misses too (mtime is part of the key).
        var beforeTouch = Key(data).Hash;
        File.SetLastWriteTimeUtc(data, DateTime.UtcNow.AddMinutes(2));
        Assert.NotEqual(beforeTouch, Key(data).Hash);
    }

    [Fact]
    public void Tokenizer_files_are_part_of_the_key_by_content()
    {
        using var dir = new TempDirectory();
        var tok = Path.Combine(dir.Path, "tok");
        Directory.CreateDirectory(tok);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), "{}");
        File.WriteAllText(Path.Combine(tok, "model.safetensors"), "weights are not part of it");
        var before = new EncodingCacheKey().AddTokenizerFolder(tok).Hash;
        File.WriteAllText(Path.Combine(tok, "model.safetensors"), "changed weights");
        Assert.Equal(before, new EncodingCacheKey().AddTokenizerFolder(tok).Hash);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), "{ }");
        Assert.NotEqual(before, new EncodingCacheKey().AddTokenizerFolder(tok).Hash);
    }

    [Fact]
    public void Dataset_entries_with_sample_counts_and_folders_key_their_files()
    {
        using var dir = new TempDirectory();
        var data = dir.File("a.jsonl");
        File.WriteAllText(data, "x");
        var withCount = new EncodingCacheKey().AddDatasetEntry(data + "#100").ToString();
        Assert.Contains(Path.GetFullPath(data) + "|1|", withCount);
        var folder = new EncodingCacheKey().AddDatasetEntry(dir.Path).ToString();
        Assert.Contains(Path.GetFullPath(data) + "|1|", folder);
        Assert.NotEqual(new EncodingCacheKey().AddDatasetEntry(data + "#100").Hash, new EncodingCacheKey().AddDatasetEntry(data + "#200").Hash);
    }

    [Fact]
    public void Cached_dataset_folders_round_trip_and_replace_old_ones()
    {
        using var dir = new TempDirectory();
        var samples = Encode(30, packing: true);
        var folder = dir.File("cached");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "stale.txt"), "old");
        new EncodedDatasets(EncodedDataset.FromSamples(samples), EncodedDataset.FromSamples(samples.Take(2))).SaveFolder(folder, "info");
        Assert.False(File.Exists(Path.Combine(folder, "stale.txt")));
        var back = EncodedDatasets.LoadFolder(folder);
        AssertSame(samples, back.Train);
        AssertSame(samples.Take(2).ToList(), back.Validation);
        Assert.Equal(["cached"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName));
        Assert.Contains("no train.bin", Assert.Throws<OspreyException>(() => EncodedDatasets.LoadFolder(dir.Path)).Message);
    }

    [Fact]
    public void A_damaged_entry_is_rebuilt()
    {
        using var dir = new TempDirectory();
        var cache = new EncodedDatasetCache(dir.File("cache"));
        var key = new EncodingCacheKey().Add("x", "1");
        var samples = Encode(20);
        cache.Store(key, new EncodedDatasets(EncodedDataset.FromSamples(samples), EncodedDataset.Empty));
        File.WriteAllText(Path.Combine(cache.EntryPath(key), "train.bin"), "junk");
        Assert.Null(cache.TryLoad(key));
        var rebuilt = cache.GetOrCreate(key, () => new EncodedDatasets(EncodedDataset.FromSamples(samples), EncodedDataset.Empty), out var hit);
        Assert.False(hit);
        AssertSame(samples, cache.TryLoad(key)!.Train);
        Assert.Equal(samples.Count, rebuilt.Train.Count);
    }
}

/// <summary>The default cache folder follows XDG_CACHE_HOME.</summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class EncodedDatasetCacheRootTests
{
    [Fact]
    public void Default_root_respects_xdg_cache_home()
    {
        using var dir = new TempDirectory();
        using (new EnvironmentVariableScope("XDG_CACHE_HOME", dir.Path))
            Assert.Equal(Path.Combine(dir.Path, "osprey", "encoded"), EncodedDatasetCache.DefaultRoot);
        using (new EnvironmentVariableScope("XDG_CACHE_HOME", null))
            Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "osprey", "encoded"), EncodedDatasetCache.DefaultRoot);
    }
}
