using Osprey.Datasets;
using Osprey.Tests.Cli.Commands;
using Parquet.Serialization;
using static Osprey.Tests.Datasets.DatasetTestHelpers;

namespace Osprey.Tests.Datasets;

[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class DatasetSourceTests
{
    public sealed class AlpacaRecord
    {
        public string? Instruction { get; set; }
        public string? Input { get; set; }
        public string? Output { get; set; }
    }

    public sealed class QaRecord
    {
        public string? Question { get; set; }
        public string? Answer { get; set; }
    }

    [Fact]
    public void Csv_QuotesAndNewlinesInFields()
    {
        var rows = Rows(Example("qa.csv"));
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Alpaca, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"Quote the proverb."},{"role":"assistant","content":"He said, \"Measure twice, cut once.\""}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Write two lines about the sea."},{"role":"assistant","content":"The sea is wide,\nthe sea is deep."}]"""), Json(rows[1].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Add the numbers.\n1, 2, 3"},{"role":"assistant","content":"6"}]"""), Json(rows[2].Conversation));
        Assert.Equal(Example("qa.csv") + " row 3", rows[2].Where);
    }

    [Fact]
    public void Tsv_QueryResponse()
    {
        var rows = Rows(Example("qa.tsv"));
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.QueryResponse, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"How many legs does a spider have?"},{"role":"assistant","content":"A spider has eight legs."}]"""), Json(rows[2].Conversation));
    }

    [Fact]
    public void Csv_MessagesColumnHoldingJson()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("m.csv"), "messages\n\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"a, b\"\"}, {\"\"role\"\": \"\"assistant\"\", \"\"content\"\": \"\"c\"\"}]\"\n");
        var row = Rows(dir.File("m.csv")).Single();
        Assert.Equal(Norm("""[{"role":"user","content":"a, b"},{"role":"assistant","content":"c"}]"""), Json(row.Conversation));
    }

    [Fact]
    public async Task Parquet_FlatColumns()
    {
        using var dir = new TempDirectory();
        var path = dir.File("alpaca.parquet");
        await ParquetSerializer.SerializeAsync(new[]
        {
            new AlpacaRecord { Instruction = "Add.", Input = "1 2", Output = "3" },
            new AlpacaRecord { Instruction = "Greet.", Input = "", Output = "Hi" },
        }, path);
        var rows = Rows(path);
        Assert.Equal(2, rows.Count);
        Assert.Equal(DatasetFormat.Alpaca, rows[0].Format);
        Assert.Equal(Norm("""[{"role":"user","content":"Add.\n1 2"},{"role":"assistant","content":"3"}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Greet."},{"role":"assistant","content":"Hi"}]"""), Json(rows[1].Conversation));
        Assert.Equal(path + " row 2", rows[1].Where);
    }

    public sealed class ParquetMessage
    {
        public string? role { get; set; }
        public string? content { get; set; }
    }

    public sealed class ParquetConversation
    {
        public List<ParquetMessage>? messages { get; set; }
    }

    [Fact]
    public async Task Parquet_NestedMessages()
    {
        using var dir = new TempDirectory();
        var path = dir.File("chat.parquet");
        await ParquetSerializer.SerializeAsync(new[]
        {
            new ParquetConversation { messages = [new() { role = "user", content = "Hi" }, new() { role = "assistant", content = "Hello!" }] },
        }, path);
        var row = Rows(path).Single();
        Assert.Equal(DatasetFormat.Messages, row.Format);
        Assert.Equal(Norm("""[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]"""), Json(row.Conversation));
    }

    [Fact]
    public void Folder_ReadsEveryFileInOrder()
    {
        using var dir = new TempDirectory();
        File.Copy(Example("pretrain.txt"), dir.File("a.txt"));
        File.Copy(Example("pretrain.jsonl"), dir.File("b.jsonl"));
        File.WriteAllText(dir.File("README.md"), "not data");
        var rows = Rows(dir.Path);
        Assert.Equal(24, rows.Count);
        Assert.Equal(dir.File("a.txt"), rows[0].Source);
        Assert.Equal(dir.File("b.jsonl"), rows[12].Source);
    }

    [Fact]
    public void Folder_Subset()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("en"));
        Directory.CreateDirectory(dir.File("zh"));
        File.WriteAllText(dir.File("en/train.jsonl"), """{"text":"hello"}""" + "\n");
        File.WriteAllText(dir.File("zh/train.jsonl"), """{"text":"你好"}""" + "\n");
        Assert.Equal("你好", Rows(dir.Path + ":zh").Single().Text);
        Assert.Equal(2, Rows(dir.Path).Count);
    }

    [Fact]
    public void Mixing_ConcatenatesDatasets()
    {
        var rows = Rows(Example("alpaca.json"), Example("pretrain.txt"), Example("kto.jsonl"));
        Assert.Equal(11 + 12 + 10, rows.Count);
        Assert.Equal(DatasetFormat.Alpaca, rows[0].Format);
        Assert.Equal(DatasetFormat.Text, rows[11].Format);
        Assert.Equal(DatasetFormat.Kto, rows[23].Format);
    }

    [Fact]
    public void Sampling_IsDeterministicBySeed_WithoutReplacement()
    {
        List<string> Sample(int seed) => Rows(new DatasetOptions { Datasets = [Example("pretrain.txt") + "#5"], Seed = seed })
            .Select(r => r.Text!).ToList();
        var a = Sample(42);
        Assert.Equal(5, a.Count);
        Assert.Equal(5, a.Distinct().Count());
        Assert.Equal(a, Sample(42));
        Assert.NotEqual(a, Sample(7));
        // Without --dataset_shuffle, #N takes the first N rows (as ms-swift does).
        var first = Rows(new DatasetOptions { Datasets = [Example("pretrain.txt") + "#5"], Shuffle = false }).Select(r => r.Text!);
        Assert.Equal(File.ReadAllLines(Example("pretrain.txt")).Take(5), first);
    }

    [Fact]
    public void Sampling_MoreThanRows_RepeatsThenSamples()
    {
        var rows = Rows(new DatasetOptions { Datasets = [Example("pretrain.txt") + "#30"], Shuffle = false });
        Assert.Equal(30, rows.Count);
        var all = File.ReadAllLines(Example("pretrain.txt"));
        Assert.Equal(all.Concat(all), rows.Take(24).Select(r => r.Text));
        Assert.Equal(6, rows.Skip(24).Select(r => r.Text).Distinct().Count());
    }

    [Fact]
    public void Shuffle_IsDeterministicBySeedAndKeepsRows()
    {
        var options = new DatasetOptions { Datasets = [Example("pretrain.txt")], Seed = 1 };
        var a = Rows(options).Select(r => r.Text).ToList();
        var b = Rows(options).Select(r => r.Text).ToList();
        Assert.Equal(a, b);
        Assert.NotEqual(File.ReadAllLines(Example("pretrain.txt")), a);
        Assert.Equal(File.ReadAllLines(Example("pretrain.txt")).Order(StringComparer.Ordinal), a.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SplitRatio_HoldsOutValidation()
    {
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], SplitDatasetRatio = 0.25 });
        var train = loaded.Train.Select(r => r.Text!).ToList();
        var val = loaded.Validation.Select(r => r.Text!).ToList();
        Assert.Equal(9, train.Count);
        Assert.Equal(3, val.Count);
        Assert.Empty(train.Intersect(val));
        var again = DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], SplitDatasetRatio = 0.25 });
        Assert.Equal(val, again.Validation.Select(r => r.Text!));
    }

    [Fact]
    public void ValDataset_DisablesSplit()
    {
        var loaded = DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], ValDatasets = [Example("pretrain.jsonl") + "#2"], SplitDatasetRatio = 0.5 });
        Assert.Equal(12, loaded.Train.Count());
        Assert.Equal(2, loaded.Validation.Count());
    }

    [Fact]
    public void Streaming_EqualsNonStreaming_WithoutShuffle()
    {
        var files = new[] { Example("messages.jsonl"), Example("alpaca.json"), Example("qa.csv"), Example("pretrain.txt") };
        var eager = Rows(new DatasetOptions { Datasets = files, Shuffle = false });
        var lazy = DatasetLoader.Load(new DatasetOptions { Datasets = files, Shuffle = false, Streaming = true }).Train;
        Assert.IsNotType<List<DatasetRow>>(lazy);
        var streamed = lazy.ToList();
        Assert.Equal(eager.Count, streamed.Count);
        for (var i = 0; i < eager.Count; i++)
        {
            Assert.Equal(eager[i].Where, streamed[i].Where);
            Assert.Equal(eager[i].Text, streamed[i].Text);
            if (eager[i].Conversation is not null) Assert.Equal(Json(eager[i].Conversation), Json(streamed[i].Conversation));
        }
    }

    [Fact]
    public void Streaming_BufferShuffleKeepsEveryRow_AndSplitIsDisjoint()
    {
        var shuffled = DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], Streaming = true, Seed = 3 }).Train.Select(r => r.Text!).ToList();
        Assert.Equal(File.ReadAllLines(Example("pretrain.txt")).Order(StringComparer.Ordinal), shuffled.Order(StringComparer.Ordinal));
        var rows = Enumerable.Range(1, 50).Select(i => new DatasetRow("x", i, DatasetFormat.Text, null, i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToList();
        var buffered = DatasetLoader.BufferShuffle(rows, 5, size: 8).ToList();
        Assert.Equal(50, buffered.Distinct().Count());
        Assert.NotEqual(rows, buffered);
        var split = DatasetLoader.Load(new DatasetOptions { Datasets = [Example("pretrain.txt")], Streaming = true, SplitDatasetRatio = 0.3 });
        var train = split.Train.Select(r => r.Text).ToList();
        var val = split.Validation.Select(r => r.Text).ToList();
        Assert.Equal(12, train.Count + val.Count);
        Assert.Empty(train.Intersect(val));
    }

    [Fact]
    public void Columns_AutoMapping_QuestionAnswer()
    {
        var rows = Rows(Example("question_answer.jsonl"));
        Assert.All(rows, r => Assert.Equal(DatasetFormat.QueryResponse, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"What is the boiling point of water at sea level?"},{"role":"assistant","content":"Water boils at 100 degrees Celsius (212 °F) at sea level."}]"""), Json(rows[0].Conversation));
    }

    [Fact]
    public void Columns_AutoMapping_ConflictingNamesAreLeftAlone()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("c.jsonl"), """{"question":"Q","prompt":"P","answer":"A"}""" + "\n");
        var error = LoadError(dir.File("c.jsonl"));
        Assert.Contains("\"query\" is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Columns_Explicit()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("c.jsonl"), """{"ask":"Q1","reply":"A1","meta":1}""" + "\n");
        var rows = Rows(new DatasetOptions
        {
            Datasets = [dir.File("c.jsonl")],
            Shuffle = false,
            Columns = new Dictionary<string, string> { ["ask"] = "query", ["reply"] = "response" },
        });
        Assert.Equal(Norm("""[{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"}]"""), Json(rows.Single().Conversation));
    }

    [Fact]
    public void Columns_AutoMappingDisabled()
    {
        var error = LoadError(Example("question_answer.jsonl"), o => new DatasetOptions { Datasets = o.Datasets, Shuffle = false, DisableAutoColumnMapping = true });
        Assert.Contains("matches no dataset format", error.Message, StringComparison.Ordinal);
        Assert.Contains("--columns", error.Message, StringComparison.Ordinal);
        var rows = Rows(new DatasetOptions
        {
            Datasets = [Example("question_answer.jsonl")],
            Shuffle = false,
            DisableAutoColumnMapping = true,
            Columns = new Dictionary<string, string> { ["question"] = "query", ["answer"] = "response" },
        });
        Assert.Equal(10, rows.Count);
    }

    [Fact]
    public void SpecParsing()
    {
        Assert.Equal(new DatasetSpec("AI-ModelScope/sharegpt_gpt4:V3_format#100", "AI-ModelScope/sharegpt_gpt4", "V3_format", 100), DatasetLoader.ParseSpec("AI-ModelScope/sharegpt_gpt4:V3_format#100"));
        Assert.Equal(new DatasetSpec("alpaca-gpt4-data-en#500", "alpaca-gpt4-data-en", null, 500), DatasetLoader.ParseSpec("alpaca-gpt4-data-en#500"));
        Assert.Equal(new DatasetSpec("weird:name.jsonl", "weird:name.jsonl", null, null), DatasetLoader.ParseSpec("weird:name.jsonl"));
        using var dir = new TempDirectory();
        var odd = dir.File("a:b.jsonl");
        File.WriteAllText(odd, """{"text":"x"}""" + "\n");
        Assert.Equal("x", Rows(odd).Single().Text);
    }

    [Fact]
    public void HubCache_ResolvesFakeHuggingFaceCache()
    {
        using var dir = new TempDirectory();
        var repo = dir.File("datasets--my-org--tiny");
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), "abc123\n");
        var snap = Path.Combine(repo, "snapshots", "abc123", "data");
        Directory.CreateDirectory(snap);
        File.Copy(Example("alpaca.json"), Path.Combine(snap, "train-00000.json"));
        File.WriteAllText(Path.Combine(snap, "test-00000.jsonl"), """{"text":"held out"}""" + "\n");
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", "old999"));
        using var env = new EnvironmentVariableScope("HF_HUB_CACHE", dir.Path);
        Assert.Equal(Path.Combine(repo, "snapshots", "abc123"), Osprey.Hub.HubDatasetCache.Find("my-org/tiny"));
        var rows = Rows("my-org/tiny#3");
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Alpaca, r.Format));
    }

    [Fact]
    public void HubCache_RegisteredNameFromModelScopeCache()
    {
        using var dir = new TempDirectory();
        var folder = Path.Combine(dir.Path, "datasets", "swift", "self-cognition");
        Directory.CreateDirectory(folder);
        File.Copy(Example("self-cognition.jsonl"), Path.Combine(folder, "self_cognition.jsonl"));
        using var hf = new EnvironmentVariableScope("HF_HUB_CACHE", dir.File("empty"));
        using var ms = new EnvironmentVariableScope("MODELSCOPE_CACHE", dir.Path);
        var rows = Rows(new DatasetOptions { Datasets = ["self-cognition#2"], Shuffle = false, ModelName = ("甲", "Alpha"), ModelAuthor = ("乙", "Beta") });
        Assert.Equal(2, rows.Count);
        Assert.DoesNotContain("{{", Json(rows[0].Conversation), StringComparison.Ordinal);
    }

    [Fact]
    public void HubCache_MissingDataset_SaysNotCached()
    {
        using var dir = new TempDirectory();
        using var hf = new EnvironmentVariableScope("HF_HUB_CACHE", dir.Path);
        using var ms = new EnvironmentVariableScope("MODELSCOPE_CACHE", dir.Path);
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", "1"); // cache only: no download attempt
        var error = Assert.Throws<OspreyException>(() => Load("alpaca-gpt4-data-en"));
        Assert.Contains("vicgalle/alpaca-gpt4", error.Message, StringComparison.Ordinal);
        Assert.Contains("not in the local dataset caches", error.Message, StringComparison.Ordinal);
        Assert.Contains("download", error.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<OspreyException>(() => Load("no-such-dataset"));
        Assert.Contains("osprey dataset list", unknown.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<OspreyException>(() => Load(dir.File("nope.jsonl")));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
    }
}
