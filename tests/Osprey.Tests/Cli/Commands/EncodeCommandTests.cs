using System.Text;
using System.Text.Json;
using Osprey.Cli;
using Osprey.Cli.Args;
using Osprey.Cli.Commands;
using Osprey.Datasets;
using Osprey.Templates;
using Osprey.Tests.Datasets;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;

namespace Osprey.Tests.Cli.Commands;

/// <summary><c>osprey encode</c>: flags, output lines, --show, the benchmark mode; and its dataset flags (<see cref="EncodeOptions"/>).</summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class EncodeCommandTests
{
    private static string Qwen3 => NpmTokenizers.Folder("qwen3");

    private static readonly Lazy<Tokenizer> Tok = new(() => Tokenizer.Load(NpmTokenizers.Folder("qwen3")));

    private static OptionReader Reader(params string[] args) => new(ParsedArgs.Parse(args), "encode");

    // The dataset options osprey encode runs with: bound, checked, with its --seed.
    private static DatasetOptions ReadData(OptionReader reader)
    {
        var options = reader.Bind<EncodeOptions>();
        options.Data.Validate();
        return options.DataWithSeed;
    }

    [Fact]
    public void Dataset_flags_are_read_into_dataset_options()
    {
        var o = ReadData(Reader(
            "--dataset", "a.jsonl", "b.jsonl#100", "--val_dataset", "v.jsonl", "--split_dataset_ratio", "0.1",
            "--dataset_shuffle", "false", "--seed", "7", "--columns", "{\"prompt\": \"query\"}", "--disable_auto_column_mapping",
            "--strict", "false", "--model_name", "小黄", "Xiao Huang", "--model_author", "魔搭", "ModelScope", "--streaming"));
        Assert.Equal(["a.jsonl", "b.jsonl#100"], o.Datasets);
        Assert.Equal(["v.jsonl"], o.ValDatasets);
        Assert.Equal(0.1, o.SplitDatasetRatio);
        Assert.False(o.Shuffle);
        Assert.Equal(7, o.Seed);
        Assert.Equal("query", o.Columns!["prompt"]);
        Assert.True(o.DisableAutoColumnMapping);
        Assert.False(o.Strict);
        Assert.Equal(("小黄", "Xiao Huang"), o.ModelName);
        Assert.Equal(("魔搭", "ModelScope"), o.ModelAuthor);
        Assert.True(o.Streaming);

        var d = ReadData(Reader("--dataset", "x.jsonl"));
        Assert.True(d.Shuffle);
        Assert.True(d.Strict);
        Assert.Equal(42, d.Seed);
        Assert.Equal(0, d.SplitDatasetRatio);
        Assert.Null(d.Columns);
        Assert.False(d.Streaming);
    }

    [Theory]
    [InlineData("--columns", "[1]", "--columns must be a JSON object")]
    [InlineData("--columns", "{bad", "--columns is not valid JSON")]
    [InlineData("--columns", "{\"a\": 1}", "map each column to a column name string")]
    [InlineData("--split_dataset_ratio", "1.5", "--split_dataset_ratio must be")]
    public void Bad_dataset_flags_are_user_errors(string flag, string value, string message)
    {
        // The library's OspreyException is a user error to the CLI too: OspreyApp prints either as one line, exit code 2.
        var e = Assert.ThrowsAny<OspreyException>(() => ReadData(Reader(flag, value)));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("--packing needs --max_length", "--dataset", "x.jsonl", "--packing")]
    [InlineData("osprey encode needs --dataset")]
    [InlineData("truncation_strategy", "--dataset", "x.jsonl", "--truncation_strategy", "middle")]
    [InlineData("loss_scale", "--dataset", "x.jsonl", "--loss_scale", "some")]
    [InlineData("--max_length must be positive", "--dataset", "x.jsonl", "--max_length", "0")]
    [InlineData("do not go together", "--dataset", "x.jsonl", "--packing", "--max_length", "8", "--lazy_tokenize")]
    public void Bad_flags_exit_2_with_one_line(string message, params string[] flags)
    {
        var run = CliRun.Of(["encode", "--model", Qwen3, .. flags]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Stderr);
    }

    [Fact]
    public void Json_lines_carry_input_ids_labels_and_position_ids_when_packed()
    {
        var sb = new StringBuilder();
        EncodedSampleWriter.AppendJson(sb, new EncodedSample([1, 2, 3], [-100, 2, 3]));
        Assert.Equal("{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}", sb.ToString());
        sb.Clear();
        EncodedSampleWriter.AppendJson(sb, new EncodedSample([1, 2], [-100, -100], [0, 0]));
        Assert.Equal("{\"input_ids\":[1,2],\"labels\":[-100,-100],\"position_ids\":[0,0]}", sb.ToString());
    }

    [Fact]
    public void Show_marks_the_loss_tokens_and_counts_them()
    {
        var encoder = new DatasetEncoder(Tok.Value, new EncodingOptions { Template = "qwen3" });
        var sample = encoder.Encode(EncodingTests.Chat(1, "Hi", "Hello!"))!;
        var plain = EncodedSampleWriter.Show(sample, 0, Tok.Value, color: false);
        Assert.Contains($"--- sample 0: {sample.Length} tokens, {sample.LabelledTokenCount} with loss", plain);
        Assert.Contains("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n⟦<think>\n\n</think>\n\nHello!<|im_end|>⟧\n", plain);
        var colored = EncodedSampleWriter.Show(sample, 0, Tok.Value, color: true);
        Assert.Contains("\u001b[32m<think>\n\n</think>\n\nHello!<|im_end|>\u001b[0m", colored);
    }

    [Fact]
    public void Benchmark_mode_prints_one_json_line_of_throughput()
    {
        var run = CliRun.Of("encode", "--model", Qwen3, "--benchmark_rows", "300", "--template", "qwen3", "--dataset_num_proc", "2");
        Assert.True(run.ExitCode == 0, run.ToString());
        var line = JsonDocument.Parse(Assert.Single(run.StdoutLines)).RootElement;
        Assert.Equal(300, line.GetProperty("rows").GetInt32());
        foreach (var t in new[] { "threads_1", "threads_2" })
        {
            var entry = line.GetProperty(t);
            Assert.Equal(300, entry.GetProperty("samples").GetInt32());
            Assert.True(entry.GetProperty("tokens_per_s").GetDouble() > 0);
            Assert.True(entry.GetProperty("labelled_tokens").GetInt64() < entry.GetProperty("tokens").GetInt64());
        }
        Assert.Equal(line.GetProperty("threads_1").GetProperty("tokens").GetInt64(), line.GetProperty("threads_2").GetProperty("tokens").GetInt64());
    }

    [Fact]
    public void Synthetic_rows_are_fixed_by_the_seed()
    {
        var a = EncodingBenchmark.SyntheticAlpaca(20, 1);
        var b = EncodingBenchmark.SyntheticAlpaca(20, 1);
        var c = EncodingBenchmark.SyntheticAlpaca(20, 2);
        string Text(List<DatasetRow> rows) => string.Join("|", rows.Select(r => JsonSerializer.Serialize(r.Conversation!.Messages)));
        Assert.Equal(Text(a), Text(b));
        Assert.NotEqual(Text(a), Text(c));
    }

    // ---- End to end over real files through DatasetLoader.Load.

    [Fact]
    public void Encodes_a_messages_file_to_json_lines_and_reuses_the_cache()
    {
        using var dir = new TempDirectory();
        var data = dir.File("chat.jsonl");
        File.WriteAllLines(data,
        [
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}",
        ]);
        using var xdg = new EnvironmentVariableScope("XDG_CACHE_HOME", dir.File("cache"));
        var output = dir.File("out.jsonl");
        string[] args = ["encode", "--model", Qwen3, "--dataset", data, "--template", "qwen3", "--dataset_shuffle", "false", "--output", output];
        var first = CliRun.Of(args);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("cached in", first.Stderr);
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();
        Assert.Equal(2, lines.Length);
        var labels = lines[0].GetProperty("labels").EnumerateArray().Select(e => e.GetInt32()).Where(l => l != -100).ToArray();
        Assert.Equal("<think>\n\n</think>\n\nHello!<|im_end|>", Tok.Value.Decode(labels));
        var second = CliRun.Of(args);
        Assert.Contains("reused from", second.Stderr);
        Assert.DoesNotContain("format messages", second.Stderr); // a hit does not even read the dataset
        Assert.Contains("cached in", CliRun.Of([.. args, "--max_length", "100"]).Stderr); // a flag change misses
        Assert.Equal(lines.Select(l => l.GetRawText()), File.ReadAllLines(output));
        File.AppendAllText(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n");
        Assert.Contains("cached in", CliRun.Of(args).Stderr);
        Assert.Equal(3, File.ReadAllLines(output).Length);
    }

    [Fact]
    public void Export_to_cached_dataset_writes_what_encode_writes()
    {
        using var dir = new TempDirectory();
        using var xdg = new EnvironmentVariableScope("XDG_CACHE_HOME", dir.File("cache"));
        var examples = Path.Combine(TestPaths.RepoRoot, "examples", "datasets");
        string[] data = ["--dataset", Path.Combine(examples, "alpaca.json"), Path.Combine(examples, "sharegpt.jsonl"), "--split_dataset_ratio", "0.2", "--max_length", "64"];

        var export = CliRun.Of(["export", "--to_cached_dataset", "true", "--model", Qwen3, "--output_dir", dir.File("exported"), .. data]);
        var encode = CliRun.Of(["encode", "--model", Qwen3, "--to_cached_dataset", dir.File("encoded"), .. data]);

        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.True(encode.ExitCode == 0, encode.ToString());
        Assert.Empty(export.Stdout);
        var a = Osprey.Datasets.EncodedDatasets.LoadFolder(dir.File("exported"));
        var b = Osprey.Datasets.EncodedDatasets.LoadFolder(dir.File("encoded"));
        Assert.True(a.Train.Count > 0 && a.Validation.Count > 0, $"{a.Train.Count} train, {a.Validation.Count} validation");
        Assert.Equal(b.Train.Count, a.Train.Count);
        Assert.Equal(b.Validation.Count, a.Validation.Count);
        for (var i = 0; i < a.Train.Count; i++)
        {
            Assert.Equal(b.Train[i].InputIds, a.Train[i].InputIds);
            Assert.Equal(b.Train[i].Labels, a.Train[i].Labels);
            Assert.True(a.Train[i].Length <= 64);
        }
    }

    [Fact]
    public void Delete_reports_file_and_line_and_show_prints_marked_text()
    {
        using var dir = new TempDirectory();
        var data = dir.File("long.jsonl");
        File.WriteAllLines(data,
        [
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}]}",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Story\"}, {\"role\": \"assistant\", \"content\": \"" + string.Join(" ", Enumerable.Repeat("once upon a time", 30)) + "\"}]}",
        ]);
        var run = CliRun.Of("encode", "--model", Qwen3, "--dataset", data, "--template", "qwen3", "--max_length", "30",
            "--dataset_shuffle", "false", "--load_from_cache_file", "false", "--show", "5");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("long.jsonl line 2", run.Stderr);
        Assert.Contains("deleted", run.Stderr);
        Assert.Contains("⟦<think>\n\n</think>\n\nYo<|im_end|>⟧", run.Stdout);
        Assert.DoesNotContain("once upon", run.Stdout);
    }

    [Fact]
    public void Alpaca_and_text_files_packed_with_validation_and_a_cached_dataset_folder()
    {
        using var dir = new TempDirectory();
        var alpaca = dir.File("alpaca.jsonl");
        File.WriteAllLines(alpaca,
        [
            "{\"instruction\": \"Translate to French\", \"input\": \"Good morning\", \"output\": \"Bonjour\"}",
            "{\"instruction\": \"Add\", \"input\": \"2+3\", \"output\": \"5\"}",
        ]);
        var corpus = dir.File("corpus.txt");
        File.WriteAllLines(corpus, ["The first document.", "The second one, a bit longer."]);
        var run = CliRun.Of("encode", "--model", Qwen3, "--dataset", alpaca, corpus, "--val_dataset", alpaca, "--packing", "--max_length", "64",
            "--load_from_cache_file", "false", "--output", dir.File("out.jsonl"), "--val_output", dir.File("val.jsonl"),
            "--to_cached_dataset", dir.File("cds"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var train = File.ReadAllLines(dir.File("out.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();
        int[] Ints(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();
        Assert.All(train, t => Assert.True(Ints(t, "input_ids").Length <= 64));
        Assert.Equal(4, train.Sum(t => Ints(t, "position_ids").Count(p => p == 0)));
        var text = Tok.Value.Decode(train.SelectMany(t => Ints(t, "input_ids")).ToArray());
        Assert.Contains("Good morning", text);
        Assert.Contains("The second one, a bit longer.<|im_end|>", text); // pt rows end with the tokenizer's EOS
        Assert.Single(File.ReadAllLines(dir.File("val.jsonl")));
        var cached = EncodedDatasets.LoadFolder(dir.File("cds"));
        Assert.Equal(train.Length, cached.Train.Count);
        Assert.Equal(Ints(train[0], "input_ids"), cached.Train[0].InputIds);
        Assert.Equal(Ints(train[0], "position_ids"), cached.Train[0].PositionIds);
        Assert.Single(cached.Validation);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void Streaming_and_lazy_tokenize_write_the_same_lines_as_the_cached_eager_run()
    {
        using var dir = new TempDirectory();
        var data = dir.File("chat.jsonl");
        File.WriteAllLines(data, Enumerable.Range(1, 40).Select(i =>
            $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"What is {i} times {i}?\"}}, {{\"role\": \"assistant\", \"content\": \"{i * i}\"}}]}}"));
        string[] Lines(params string[] extra)
        {
            var output = dir.File($"out-{Guid.NewGuid():N}.jsonl");
            var run = CliRun.Of(["encode", "--model", Qwen3, "--dataset", data, "--template", "qwen3", "--dataset_shuffle", "false",
                "--load_from_cache_file", "false", "--output", output, .. extra]);
            Assert.True(run.ExitCode == 0, run.ToString());
            return File.ReadAllLines(output);
        }
        var eager = Lines();
        Assert.Equal(40, eager.Length);
        Assert.Equal(eager, Lines("--streaming"));
        Assert.Equal(eager, Lines("--lazy_tokenize"));
        Assert.Equal(eager, Lines("--dataset_num_proc", "1"));
    }

    [Fact]
    public void Help_lists_the_encode_and_dataset_flags()
    {
        var run = CliRun.Of("encode", "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var flag in new[] { "--dataset D", "--val_dataset", "--columns JSON", "--truncation_strategy", "--packing", "--lazy_tokenize", "--show N", "--to_cached_dataset" })
            Assert.Contains(flag, run.Stdout);
    }
}
