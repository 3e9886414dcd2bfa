using System.Globalization;
using System.Text.RegularExpressions;
using Osprey.Hub;

namespace Osprey.Datasets;

/// <summary>Reads datasets: files, folders, registry names and cached hub datasets; detects formats; reports bad rows.</summary>
public static partial class DatasetLoader
{
    /// <summary>
    /// Resolves every <c>--dataset</c>/<c>--val_dataset</c> entry and returns the rows. Each dataset's detected
    /// format is written to <paramref name="log"/> ("dataset alpaca.jsonl: format alpaca, 500 rows").
    /// Bad input throws <see cref="OspreyException"/> naming file, line/row and field (or, with Strict false,
    /// is skipped, counted and reported to <paramref name="log"/>).
    /// </summary>
    public static LoadedDatasets Load(DatasetOptions options, TextWriter? log = null) => LoadCore(options, log);

    /// <summary>Rows of a skipped-row report written to the log before only the count is reported.</summary>
    private const int SkipReportLimit = 10;

    /// <summary>Rows the streaming shuffle buffer holds.</summary>
    public const int ShuffleBufferSize = 1000;

    [GeneratedRegex(@"^(?<target>.*?)#(?<n>\d+)$")]
    private static partial Regex SampleSuffix();

    /// <summary>Parses <c>path_or_id[:subset][#N]</c>. ':' splits off a subset only when the part before it is an
    /// existing file or folder, a registered name or a hub id (so paths with ':' work).</summary>
    public static DatasetSpec ParseSpec(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var target = text.Trim();
        int? sample = null;
        if (SampleSuffix().Match(target) is { Success: true } m && !File.Exists(target) && !Directory.Exists(target))
        {
            if (!int.TryParse(m.Groups["n"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0)
                throw new OspreyException($"--dataset {text}: #{m.Groups["n"].Value} is not a row count; write #N with N from 1 to {int.MaxValue}.");
            sample = n;
            target = m.Groups["target"].Value;
        }
        string? subset = null;
        var colon = target.LastIndexOf(':');
        if (colon > 0 && !File.Exists(target) && !Directory.Exists(target))
        {
            var before = target[..colon];
            if (File.Exists(before) || Directory.Exists(before) || DatasetRegistry.Find(before) is not null || HubCache.IsRepoId(before))
            {
                subset = target[(colon + 1)..];
                target = before;
                if (subset.Length == 0) subset = null;
            }
        }
        if (target.Length == 0) throw new OspreyException($"--dataset '{text}' names no dataset; pass a file, a folder, a registered name or a hub id.");
        return new DatasetSpec(text, target, subset, sample);
    }

    /// <summary>Resolves an entry to its data files: a local file or folder, a registered name or a hub id in the local caches.</summary>
    public static ResolvedDataset Resolve(DatasetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var target = spec.Target;
        if (File.Exists(target))
        {
            if (spec.Subset is not null)
                throw new OspreyException($"--dataset {spec.Text}: {target} is a file, so it has no subset '{spec.Subset}'; subsets are folders of a dataset folder or hub dataset.");
            return new ResolvedDataset(spec, RawReaders.Files(target), null);
        }
        if (Directory.Exists(target))
            return new ResolvedDataset(spec, SubsetFiles(target, spec.Subset, spec.Text), null);

        var registered = DatasetRegistry.Find(target);
        if (registered is not null)
        {
            if (spec.Subset is not null && !registered.Subsets.Contains(spec.Subset, StringComparer.Ordinal))
                throw new OspreyException($"--dataset {spec.Text}: {registered.Name} has no subset '{spec.Subset}'; its subsets are {string.Join(", ", registered.Subsets)}.");
            var ids = new[] { registered.HuggingFaceId, registered.ModelScopeId }.OfType<string>().ToList();
            foreach (var id in ids)
                if (HubDatasetCache.Find(id) is { } folder)
                    return new ResolvedDataset(spec, SubsetFiles(folder, spec.Subset, spec.Text), registered);
            // Not cached: download from the hub a command would use (ModelScope unless USE_HF), as ms-swift does.
            var useHf = Hub.Download.HubDownloaders.UseHfFromEnvironment();
            var wanted = (useHf ? registered.HuggingFaceId : registered.ModelScopeId) ?? ids[0];
            return new ResolvedDataset(spec, SubsetFiles(Download(spec, wanted, ids), spec.Subset, spec.Text), registered);
        }

        if (HubCache.IsRepoId(target))
        {
            if (HubDatasetCache.Find(target) is { } folder) return new ResolvedDataset(spec, SubsetFiles(folder, spec.Subset, spec.Text), null);
            return new ResolvedDataset(spec, SubsetFiles(Download(spec, target, [target]), spec.Subset, spec.Text), null);
        }
        if (RawReaders.IsDataFile(target) || target.Contains('/', StringComparison.Ordinal) || target.Contains('\\', StringComparison.Ordinal))
            throw new OspreyException($"--dataset {spec.Text}: {target} does not exist; check the path.");
        throw new OspreyException($"--dataset {spec.Text}: '{target}' is not a file, a folder, a registered dataset or a hub id (org/name); run 'osprey dataset list' for the registered names.");
    }

    /// <summary>A hub dataset that is not cached, downloaded on first use (not in offline mode); the error names the caches searched.</summary>
    private static string Download(DatasetSpec spec, string id, IReadOnlyList<string> ids)
    {
        try
        {
            return Hub.HubResolver.ResolveDatasetAsync(id, useHf: null, offline: false, Console.Error).GetAwaiter().GetResult();
        }
        catch (OspreyException e)
        {
            var roots = HubCache.HuggingFaceRoots().Concat(HubDatasetCache.ModelScopeRoots());
            throw new OspreyException($"--dataset {spec.Text}: {string.Join(" / ", ids)} is not in the local dataset caches ({string.Join(", ", roots)}) and could not be downloaded ({e.Message.TrimEnd('.')}); run 'osprey download --dataset {id}' or pass a local file or folder.", e);
        }
    }

    /// <summary>
    /// The files of a dataset folder for a subset: the subfolder named like the subset (at any depth), else files
    /// whose names start with it; without a subset (or "default"), every file. Where some files belong to a train
    /// split (a path part or name containing "train"), only those are taken.
    /// </summary>
    private static IReadOnlyList<string> SubsetFiles(string folder, string? subset, string text)
    {
        IReadOnlyList<string> files = RawReaders.Files(folder);
        if (subset is not null && subset != "default")
        {
            var inFolder = files.Where(f => Path.GetRelativePath(folder, Path.GetDirectoryName(f)!)
                .Split(Path.DirectorySeparatorChar).Contains(subset, StringComparer.OrdinalIgnoreCase)).ToList();
            if (inFolder.Count == 0)
                inFolder = files.Where(f => Path.GetFileName(f).StartsWith(subset, StringComparison.OrdinalIgnoreCase)).ToList();
            if (inFolder.Count == 0)
            {
                var names = Directory.GetDirectories(folder).Select(Path.GetFileName).Where(n => !n!.StartsWith('.'));
                throw new OspreyException($"--dataset {text}: {folder} has no subset '{subset}' (no folder or file of that name); its folders are {string.Join(", ", names)}.");
            }
            files = inFolder;
        }
        var train = files.Where(f => Path.GetRelativePath(folder, f).Contains("train", StringComparison.OrdinalIgnoreCase)).ToList();
        return train.Count > 0 ? train : files;
    }

    private static LoadedDatasets LoadCore(DatasetOptions options, TextWriter? log)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Datasets.Count == 0 && options.ValDatasets.Count == 0)
            throw new OspreyException("No dataset given; pass --dataset with a file, a folder, a registered name or a hub id.");
        if (options.SplitDatasetRatio is < 0 or >= 1 || double.IsNaN(options.SplitDatasetRatio))
            throw new OspreyException($"--split_dataset_ratio {options.SplitDatasetRatio.ToString(CultureInfo.InvariantCulture)} is out of range; use a fraction from 0 (no split) to below 1, e.g. 0.01.");
        // Resolve everything first, so a missing dataset fails before any reading.
        var train = options.Datasets.Select(d => Resolve(ParseSpec(d))).ToList();
        var val = options.ValDatasets.Select(d => Resolve(ParseSpec(d))).ToList();
        var counter = new SkipCounter();
        var ratio = val.Count == 0 ? options.SplitDatasetRatio : 0;
        return options.Streaming ? LoadStreaming(options, log, train, val, counter, ratio) : LoadAll(options, log, train, val, counter, ratio);
    }

    private static LoadedDatasets LoadAll(DatasetOptions options, TextWriter? log, List<ResolvedDataset> trainSets, List<ResolvedDataset> valSets, SkipCounter counter, double ratio)
    {
        var random = new Random(options.Seed);
        var train = new List<DatasetRow>();
        var val = new List<DatasetRow>();
        foreach (var dataset in trainSets)
        {
            var rows = Sample(Read(dataset, options, counter, log).ToList(), dataset.Spec, options.Shuffle, random, log);
            var (kept, held) = HoldOut(rows, ratio, random, dataset.Spec.Text, log);
            train.AddRange(kept);
            val.AddRange(held);
        }
        foreach (var dataset in valSets)
            val.AddRange(Sample(Read(dataset, options, counter, log).ToList(), dataset.Spec, options.Shuffle, random, log));
        if (options.Shuffle) ShuffleInPlace(train, random);
        if (counter.Value > 0) log?.WriteLine($"{counter.Value} bad rows skipped (--strict false)");
        return new LoadedDatasets { Train = train, Validation = val, SkippedCounter = counter };
    }

    /// <summary>
    /// --split_dataset_ratio over one dataset's rows: ⌈ratio·n⌉ rows drawn with <paramref name="random"/> are held out
    /// for validation, the rest kept in order; ratio 0 keeps them all. Text rows and encoded image rows split alike.
    /// </summary>
    internal static (List<T> Train, List<T> Held) HoldOut<T>(IReadOnlyList<T> rows, double ratio, Random random, string dataset, TextWriter? log)
    {
        if (ratio <= 0) return ([.. rows], []);
        var valCount = (int)Math.Ceiling(ratio * rows.Count);
        if (valCount >= rows.Count && rows.Count > 0)
            throw new OspreyException($"--split_dataset_ratio {ratio.ToString(CultureInfo.InvariantCulture)} would leave no training rows of {dataset} ({rows.Count} rows); lower it or pass --val_dataset.");
        var order = Enumerable.Range(0, rows.Count).ToArray();
        random.Shuffle(order);
        var held = order.Take(valCount).ToHashSet();
        log?.WriteLine($"dataset {dataset}: {valCount} rows held out for validation (--split_dataset_ratio {ratio.ToString(CultureInfo.InvariantCulture)})");
        return ([.. rows.Where((_, i) => !held.Contains(i))], [.. order.Take(valCount).Select(i => rows[i])]);
    }

    private static void ShuffleInPlace(List<DatasetRow> rows, Random random)
    {
        for (var i = rows.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (rows[i], rows[j]) = (rows[j], rows[i]);
        }
    }

    /// <summary>
    /// #N as ms-swift samples: N below the row count takes N rows without replacement (a seeded permutation, or the
    /// first N without shuffling); N above repeats the whole dataset N / rows times and adds N % rows sampled rows.
    /// </summary>
    internal static List<DatasetRow> Sample(List<DatasetRow> rows, DatasetSpec spec, bool shuffle, Random random, TextWriter? log)
    {
        if (spec.Sample is not { } n) return rows;
        if (rows.Count == 0)
            throw new OspreyException($"--dataset {spec.Text}: cannot sample {n} rows from a dataset with no rows.");
        var repeats = n / rows.Count;
        var remain = n % rows.Count;
        var result = new List<DatasetRow>(n);
        for (var r = 0; r < repeats; r++) result.AddRange(rows);
        if (remain > 0)
        {
            var order = Enumerable.Range(0, rows.Count).ToArray();
            if (shuffle) random.Shuffle(order);
            result.AddRange(order.Take(remain).Select(i => rows[i]));
        }
        if (repeats == 0) log?.WriteLine($"dataset {spec.Text}: sampled {n} of {rows.Count} rows");
        if (repeats > 0) log?.WriteLine($"dataset {spec.Text}: #{n} is more than its {rows.Count} rows; repeating it {repeats} time(s){(remain > 0 ? $" plus {remain} sampled rows" : "")}");
        return result;
    }

    private static LoadedDatasets LoadStreaming(DatasetOptions options, TextWriter? log, List<ResolvedDataset> trainSets, List<ResolvedDataset> valSets, SkipCounter counter, double ratio)
    {
        IEnumerable<DatasetRow> Take(ResolvedDataset d) =>
            d.Spec.Sample is { } n ? Read(d, options, counter, log).Take(n) : Read(d, options, counter, log);

        // A streaming split cannot hold the dataset: each row goes to validation by a seeded hash of where it is.
        var train = trainSets.SelectMany(d => ratio > 0 ? Take(d).Where(r => HashFraction(options.Seed, r) >= ratio) : Take(d));
        var val = ratio > 0
            ? trainSets.SelectMany(d => Take(d).Where(r => HashFraction(options.Seed, r) < ratio))
            : valSets.SelectMany(Take);
        if (options.Shuffle) train = BufferShuffle(train, options.Seed);
        return new LoadedDatasets { Train = train, Validation = val, SkippedCounter = counter };
    }

    private static double HashFraction(int seed, DatasetRow row)
    {
        var hash = 14695981039346656037UL ^ (ulong)(uint)seed;
        foreach (var c in row.Source) hash = (hash ^ c) * 1099511628211UL;
        hash = (hash ^ (ulong)row.Line) * 1099511628211UL;
        hash ^= hash >> 29;
        return (hash >> 11) / (double)(1UL << 53);
    }

    /// <summary>A seeded shuffle through a bounded buffer: memory stays at <see cref="ShuffleBufferSize"/> rows.</summary>
    internal static IEnumerable<DatasetRow> BufferShuffle(IEnumerable<DatasetRow> rows, int seed, int size = ShuffleBufferSize)
    {
        var random = new Random(seed);
        var buffer = new List<DatasetRow>(size);
        foreach (var row in rows)
        {
            if (buffer.Count < size)
            {
                buffer.Add(row);
                continue;
            }
            var i = random.Next(size);
            yield return buffer[i];
            buffer[i] = row;
        }
        while (buffer.Count > 0)
        {
            var i = random.Next(buffer.Count);
            yield return buffer[i];
            buffer[i] = buffer[^1];
            buffer.RemoveAt(buffer.Count - 1);
        }
    }

    /// <summary>Reads one dataset's rows lazily: converts them, and throws or skips (counting) bad ones.</summary>
    internal static IEnumerable<DatasetRow> Read(ResolvedDataset dataset, DatasetOptions options, SkipCounter skipped, TextWriter? log)
    {
        var registered = dataset.Registered;
        var columns = MergeColumns(registered?.Columns, options.Columns);
        var selfCognition = registered?.SelfCognition == true || dataset.Files.Any(f => Path.GetFileName(f).Contains("self-cognition", StringComparison.OrdinalIgnoreCase) || Path.GetFileName(f).Contains("self_cognition", StringComparison.OrdinalIgnoreCase));
        foreach (var file in dataset.Files)
        {
            var label = dataset.Files.Count == 1 && dataset.Spec.Target == file ? $"dataset {dataset.Spec.Text}" : $"dataset {dataset.Spec.Text} ({file})";
            var converter = new RowConverter(options, columns, selfCognition);
            long count = 0, bad = 0;
            foreach (var raw in RawReaders.Read(file))
            {
                DatasetRow? row = null;
                string? error = raw.Error;
                if (error is null)
                {
                    try
                    {
                        row = converter.Convert(raw);
                    }
                    catch (RowError e)
                    {
                        error = e.Message;
                    }
                }
                if (row is null)
                {
                    var where = $"{raw.Source} {DatasetRow.UnitOf(raw.Source)} {raw.Line}";
                    if (options.Strict)
                        throw new OspreyException($"{where}: {error}. (To skip bad rows instead, pass --strict false.)");
                    skipped.Value++;
                    bad++;
                    if (bad <= SkipReportLimit) log?.WriteLine($"skipped {where}: {error}");
                    continue;
                }
                if (count == 0) log?.WriteLine($"{label}: format {FormatName(converter.Format!.Value)}");
                count++;
                yield return row;
            }
            if (converter.MissingModelName)
                log?.WriteLine($"{label}: has {{{{NAME}}}}/{{{{AUTHOR}}}} placeholders; pass --model_name and --model_author (Chinese and English names) to fill them in.");
            log?.WriteLine($"{label}: {count} rows{(bad > 0 ? $", {bad} bad rows skipped" : "")}");
        }
    }

    private static IReadOnlyDictionary<string, string>? MergeColumns(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        if (a is null) return b;
        if (b is null) return a;
        var merged = new Dictionary<string, string>(a, StringComparer.Ordinal);
        foreach (var (k, v) in b) merged[k] = v;
        return merged;
    }

    /// <summary>The name a format is logged and listed under.</summary>
    public static string FormatName(DatasetFormat format) => format switch
    {
        DatasetFormat.Messages => "messages",
        DatasetFormat.ShareGpt => "sharegpt",
        DatasetFormat.Alpaca => "alpaca",
        DatasetFormat.QueryResponse => "query-response",
        DatasetFormat.Text => "text",
        DatasetFormat.Preference => "preference",
        DatasetFormat.Kto => "kto",
        _ => format.ToString().ToLowerInvariant(),
    };
}
