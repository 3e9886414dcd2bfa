using Osprey.Inference;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Tests.Cli.Commands;

/// <summary>The demo model (tiny random Llama with a byte-level ChatML tokenizer) built once in a temp folder.</summary>
public sealed class DemoModelFolder : IDisposable
{
    private readonly TempDirectory _temp = new();

    public DemoModelFolder()
    {
        // On the CPU, explicitly: the process's first initialisation decides, and tests rely on it being a CPU one.
        Osprey.Runtime.TorchRuntime.Initialize(Osprey.Runtime.DeviceSpec.Cpu);
        Path = DemoModel.EnsureCreated(_temp.File("demo"));
    }

    public string Path { get; }

    public void Dispose() => _temp.Dispose();
}

/// <summary>
/// <c>osprey infer</c> with text: <c>--val_dataset</c> batches (messages and query rows, batching, --system,
/// atomic results) and the interactive chat on a redirected stdin, on the demo model.
/// </summary>
public sealed class InferTextTests(DemoModelFolder demo) : IClassFixture<DemoModelFolder>
{
    private const int MaxNew = 10;

    private string[] Infer(params string[] flags) => ["infer", "--model", demo.Path, "--device", "cpu", "--max_new_tokens", $"{MaxNew}", .. flags];

    private static string Jsonl(params object[] rows) => string.Concat(rows.Select(r => JsonSerializer.Serialize(r) + "\n"));

    /// <summary>Runs --val_dataset over <paramref name="rows"/> with --result_path; returns the output records.</summary>
    private List<JsonObject> Answer(string rows, params string[] flags)
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("data.jsonl"), rows);
        var run = CliRun.Of(Infer(["--val_dataset", temp.File("data.jsonl"), "--result_path", temp.File("out.jsonl"), .. flags]));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Empty(run.Stdout);
        return File.ReadAllLines(temp.File("out.jsonl")).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();
    }

    private static string Response(JsonObject record) => record["response"]!.GetValue<string>();

    private static object User(string text) => new { role = "user", content = text };

    private static object Assistant(string text) => new { role = "assistant", content = text };

    private static object System(string text) => new { role = "system", content = text };

    [Fact]
    public void EachOutputRowIsTheInputRowPlusTheResponseOfItsPrompt()
    {
        var rows = Jsonl(
            new { messages = new[] { User("hi") } },
            new { messages = new[] { User("hi"), Assistant("the label") }, id = 7 },
            new { query = "hi", response = "label", id = "q" },
            new { messages = new[] { System("be brief"), User("hello there"), Assistant("ok"), User("and?") } },
            new { query = "and?", system = "be brief", history = new[] { new[] { "hello there", "ok" } } });

        var output = Answer(rows);

        var input = rows.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();
        Assert.Equal(5, output.Count);
        for (var i = 0; i < 5; i++)
        {
            var expected = (JsonObject)input[i].DeepClone();
            if (i == 2)
            {
                // The query format's own response is its label; it moves to "labels".
                expected.Remove("response");
                expected["labels"] = "label";
            }
            expected["response"] = output[i]["response"]!.DeepClone();
            Assert.True(JsonNode.DeepEquals(expected, output[i]), $"row {i}: {output[i].ToJsonString()}");
            Assert.Equal("response", output[i].Last().Key);
        }

        // A final assistant message is the label, not part of the prompt; the query format is the same conversation.
        var hi = Response(output[0]);
        Assert.False(string.IsNullOrEmpty(hi), "the demo model should say something to 'hi'");
        Assert.Equal(hi, Response(output[1]));
        Assert.Equal(hi, Response(output[2]));
        Assert.Equal(Response(output[3]), Response(output[4]));
        Assert.NotEqual(hi, Response(output[3]));
    }

    [Fact]
    public void TheResponseIsTheTemplatedPromptsGreedyTokensDecodedWithoutSpecialTokens()
    {
        // The same path by hand: render and encode with the tokenizer, generate ids with --input_ids, decode.
        var tokenizer = Tokenizer.Load(demo.Path);
        var text = tokenizer.ApplyChatTemplate([new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" }],
            new ChatTemplateOptions { AddGenerationPrompt = true });
        var prompt = tokenizer.EncodeIds(text, addSpecialTokens: false);
        var ids = CliRun.Of(Infer("--input_ids", string.Join(' ', prompt)));
        Assert.True(ids.ExitCode == 0, ids.ToString());
        var generated = ids.Stdout.Split(']')[1].Split("  (")[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

        var output = Answer(Jsonl(new { messages = new[] { User("hi") } }));

        Assert.Equal(tokenizer.Decode(generated, skipSpecialTokens: true), Response(Assert.Single(output)));
    }

    [Theory]
    [InlineData("2")]
    [InlineData("3")]
    public void BatchedGreedyResponsesEqualOneByOne(string batch)
    {
        var rows = Jsonl(
            new { messages = new[] { User("hi") } },
            new { messages = new[] { User("a much longer question about the weather in Paris today") } },
            new { query = "what?" },
            new { messages = new[] { System("sys"), User("x") } },
            new { query = "tell me a story about a fox", history = new[] { new[] { "hello", "hi there" } } });

        var single = Answer(rows, "--max_batch_size", "1").Select(Response).ToArray();
        var batched = Answer(rows, "--max_batch_size", batch).Select(Response).ToArray();

        Assert.Equal(single, batched);
        Assert.True(single.Distinct().Count() > 2, string.Join(" | ", single));
    }

    [Fact]
    public void SystemFlagFillsInForRowsWithoutASystemMessage()
    {
        var withSystem = Answer(Jsonl(new { messages = new[] { System("be brief"), User("hi") } }));
        var withOther = Answer(Jsonl(new { messages = new[] { System("other"), User("hi") } }));
        var plain = Answer(Jsonl(new { messages = new[] { User("hi") } }));

        var inserted = Answer(Jsonl(new { messages = new[] { User("hi") } }, new { query = "hi" }), "--system", "be brief");
        var kept = Answer(Jsonl(new { messages = new[] { System("other"), User("hi") } }, new { query = "hi", system = "other" }), "--system", "be brief");

        Assert.NotEqual(Response(plain[0]), Response(withSystem[0]));
        Assert.NotEqual(Response(withOther[0]), Response(withSystem[0]));
        Assert.Equal(Response(withSystem[0]), Response(inserted[0]));
        Assert.Equal(Response(withSystem[0]), Response(inserted[1]));
        // A row's own system message wins over --system (ms-swift's priority).
        Assert.Equal(Response(withOther[0]), Response(kept[0]));
        Assert.Equal(Response(withOther[0]), Response(kept[1]));
    }

    [Fact]
    public void WithoutResultPathTheRowsGoToStdoutAndProgressToStderr()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("data.jsonl"), Jsonl(new { query = "hi" }, new { query = "yo" }, new { query = "hey" }));

        var run = CliRun.Of(Infer("--val_dataset", temp.File("data.jsonl"), "--max_batch_size", "2"));

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.StdoutLines.Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
        Assert.Equal(["hi", "yo", "hey"], lines.Select(l => l["query"]!.GetValue<string>()));
        Assert.All(lines, l => Assert.NotNull(l["response"]));
        Assert.Contains(run.StderrLines, l => l.StartsWith("osprey: 2/3 rows answered", StringComparison.Ordinal));
        Assert.Contains(run.StderrLines, l => l.StartsWith("osprey: 3/3 rows answered", StringComparison.Ordinal));
    }

    [Fact]
    public void TheResultFileIsReplacedWholeOrNotAtAll()
    {
        using var temp = new TempDirectory();
        var result = temp.File("out.jsonl");
        File.WriteAllText(result, "previous results\n");
        File.WriteAllText(temp.File("bad.jsonl"), "{\"query\": \"hi\"}\n{\"query\": \n");
        File.WriteAllText(temp.File("good.jsonl"), "{\"query\": \"hi\"}\n");

        var bad = CliRun.Of(Infer("--val_dataset", temp.File("bad.jsonl"), "--result_path", result));

        Assert.Equal(2, bad.ExitCode);
        Assert.Contains($"{temp.File("bad.jsonl")} line 2 is not valid JSON", Assert.Single(bad.StderrLines));
        Assert.Equal("previous results\n", File.ReadAllText(result));

        var good = CliRun.Of(Infer("--val_dataset", temp.File("good.jsonl"), "--result_path", result));

        Assert.True(good.ExitCode == 0, good.ToString());
        Assert.Equal("hi", JsonNode.Parse(Assert.Single(File.ReadAllLines(result)))!["query"]!.GetValue<string>());
        Assert.Equal(["bad.jsonl", "good.jsonl", "out.jsonl"], temp.FileNames()); // no temporary file left behind
        Assert.Equal($"osprey: wrote 1 rows to {result}.", good.StderrLines[^1]);
    }

    [Fact]
    public void TheChatStreamsRepliesKeepsHistoryAndClears()
    {
        var first = Response(Answer(Jsonl(new { messages = new[] { User("hello") } }))[0]);
        var second = Response(Answer(Jsonl(new { messages = new[] { User("hello"), Assistant(first), User("hi") } }))[0]);
        var expected = $"<<< hello\n{first}\n<<< hi\n{second}\n<<< clear\n<<< hello\n{first}\n<<< exit\n";

        var streamed = CliInput.Of("hello\nhi\nclear\nhello\nexit\nnever read\n", Infer());
        var whole = CliInput.Of("hello\nhi\nclear\nhello\nquit\n", Infer("--stream", "false"));

        Assert.True(streamed.ExitCode == 0, streamed.ToString());
        Assert.NotEqual(first, second);
        Assert.Equal(expected, streamed.Stdout);
        Assert.Equal(expected.Replace("<<< exit", "<<< quit", StringComparison.Ordinal), whole.Stdout);
        Assert.Contains("osprey: conversation cleared.", streamed.StderrLines);
    }

    [Fact]
    public void TheChatEndsAtEndOfInputAndSkipsBlankLines()
    {
        var first = Response(Answer(Jsonl(new { messages = new[] { User("hello") } }))[0]);

        var run = CliInput.Of("\nhello\n", Infer());

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal($"<<< \n<<< hello\n{first}\n<<< \n", run.Stdout);
    }

    [Fact]
    public void ATokenizerWithoutChatTemplateNeedsTemplateAFileOrAName()
    {
        using var temp = new TempDirectory();
        foreach (var file in Directory.GetFiles(demo.Path))
            File.Copy(file, temp.File(Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(temp.File("tokenizer_config.json")))!.AsObject();
        var template = config["chat_template"]!.GetValue<string>();
        config.Remove("chat_template");
        File.WriteAllText(temp.File("tokenizer_config.json"), config.ToJsonString());
        File.WriteAllText(temp.File("chatml.jinja"), template);
        File.WriteAllText(temp.File("data.jsonl"), Jsonl(new { query = "hi" }));

        var refused = CliInput.Of("hi\n", "infer", "--model", temp.Path, "--device", "cpu");
        var withFile = CliRun.Of("infer", "--model", temp.Path, "--device", "cpu", "--max_new_tokens", $"{MaxNew}",
            "--val_dataset", temp.File("data.jsonl"), "--template", temp.File("chatml.jinja"));
        var named = CliRun.Of("infer", "--model", temp.Path, "--device", "cpu", "--max_new_tokens", $"{MaxNew}",
            "--val_dataset", temp.File("data.jsonl"), "--template", "chatml");
        var qwen = CliRun.Of("infer", "--model", temp.Path, "--device", "cpu", "--max_new_tokens", $"{MaxNew}",
            "--val_dataset", temp.File("data.jsonl"), "--template", "qwen");
        var unknown = CliRun.Of("infer", "--model", temp.Path, "--device", "cpu", "--val_dataset", temp.File("data.jsonl"), "--template", "nonesuch");

        Assert.Equal(2, refused.ExitCode);
        Assert.Empty(refused.Stdout);
        var error = Assert.Single(refused.StderrLines);
        Assert.Contains("has no chat template", error);
        Assert.Contains("--template", error);
        Assert.True(withFile.ExitCode == 0, withFile.ToString());
        Assert.Equal(Response(Answer(Jsonl(new { query = "hi" }))[0]), JsonNode.Parse(withFile.StdoutLines[0])!["response"]!.GetValue<string>());
        // ms-swift's chatml without a system message is the demo's own template.
        Assert.True(named.ExitCode == 0, named.ToString());
        Assert.Equal(withFile.Stdout, named.Stdout);
        // qwen is chatml plus a default system message: the same row gets another prompt.
        Assert.True(qwen.ExitCode == 0, qwen.ToString());
        Assert.NotEqual(named.Stdout, qwen.Stdout);
        Assert.Equal(2, unknown.ExitCode);
        var unknownError = Assert.Single(unknown.StderrLines);
        Assert.Contains("--template nonesuch", unknownError);
        Assert.Contains("chatml", unknownError);
    }

    private string ChatMLWith(TempDirectory temp, string guard)
    {
        var template = JsonNode.Parse(File.ReadAllText(Path.Combine(demo.Path, "tokenizer_config.json")))!["chat_template"]!.GetValue<string>();
        File.WriteAllText(temp.File("t.jinja"), guard + template);
        return temp.File("t.jinja");
    }

    [Fact]
    public void AChatTurnTheTemplateRefusesIsReportedAndTheChatGoesOn()
    {
        using var temp = new TempDirectory();
        var template = ChatMLWith(temp, "{% if messages[-1].content == 'bad' %}{{ raise_exception('No bad words, please.') }}{% endif %}");
        var first = Response(Answer(Jsonl(new { messages = new[] { User("hello") } }))[0]);

        var run = CliInput.Of("bad\nhello\n", Infer("--template", template));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal($"<<< bad\n<<< hello\n{first}\n<<< \n", run.Stdout);
        Assert.Contains("osprey: No bad words, please.", run.StderrLines);
    }

    [Fact]
    public void RowToolsReachTheTemplateAndATemplateErrorNamesTheRow()
    {
        using var temp = new TempDirectory();
        var template = ChatMLWith(temp, "{% if not tools %}{{ raise_exception('This template needs tools.') }}{% endif %}");
        File.WriteAllText(temp.File("tools.jsonl"), Jsonl(
            new { query = "hi", tools = new[] { new { type = "function", function = new { name = "f" } } } },
            new { messages = new[] { User("hi") }, tools = "[{\"type\": \"function\", \"function\": {\"name\": \"g\"}}]" }));
        File.WriteAllText(temp.File("none.jsonl"), Jsonl(new { query = "hi", tools = new[] { new { type = "function" } } }, new { query = "hi" }));

        var withTools = CliRun.Of(Infer("--val_dataset", temp.File("tools.jsonl"), "--template", template));
        var without = CliRun.Of(Infer("--val_dataset", temp.File("none.jsonl"), "--template", template));

        Assert.True(withTools.ExitCode == 0, withTools.ToString());
        Assert.Equal(2, withTools.StdoutLines.Length);
        Assert.Equal(2, without.ExitCode);
        Assert.Empty(without.Stdout);
        Assert.Equal($"osprey: {temp.File("none.jsonl")} line 2: This template needs tools.", Assert.Single(without.StderrLines));
    }

    [Fact]
    public void AJsonArrayDatasetAndStreamingRepliesWork()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("data.json"), "[{\"query\": \"hello\"}, {\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}]");
        var expected = Answer(Jsonl(new { query = "hello" }, new { messages = new[] { User("hi") } })).Select(Response).ToArray();

        var run = CliRun.Of(Infer("--val_dataset", temp.File("data.json"), "--result_path", temp.File("out.jsonl"), "--stream", "true"));
        var refused = CliRun.Of(Infer("--val_dataset", temp.File("data.json"), "--stream", "true"));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(string.Concat(expected.Select(r => r + "\n")), run.Stdout);
        Assert.Equal(expected, File.ReadAllLines(temp.File("out.jsonl")).Select(l => Response((JsonObject)JsonNode.Parse(l)!)));
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--result_path", Assert.Single(refused.StderrLines));
    }

    [Fact]
    public void StreamedTextNeverShowsAnIncompleteCharacter()
    {
        // Qwen's byte-level tokens split these characters across tokens, so some prefixes end mid-character.
        var tokenizer = Tokenizer.Load(Osprey.Tests.Tokenization.NpmTokenizers.Folder("qwen3"));
        const string Text = "Un café 😀 au 世界, 🦜🦜 fin.";
        var ids = tokenizer.EncodeIds(Text, addSpecialTokens: false);
        Assert.Contains(Enumerable.Range(1, ids.Length), n => tokenizer.Decode(ids[..n]).EndsWith('\uFFFD'));

        var stream = new StreamingText(t => tokenizer.Decode(t, skipSpecialTokens: true));
        var deltas = ids.Select(stream.Add).ToList();
        deltas.Add(stream.Finish());

        Assert.DoesNotContain(deltas, d => d.Contains('\uFFFD'));
        Assert.Equal(Text, string.Concat(deltas));
        Assert.True(deltas.Count(d => d.Length > 0) > 10, "the text should arrive in many pieces");
    }

    [Fact]
    public void AnInvalidByteAtTheEndIsShownWhenTheReplyEnds()
    {
        var tokenizer = Tokenizer.Load(Osprey.Tests.Tokenization.NpmTokenizers.Folder("qwen3"));
        var ids = tokenizer.EncodeIds("ok 🦜", addSpecialTokens: false);
        // The parrot takes several byte-level tokens; stop after the first of them, mid-character.
        var n = Enumerable.Range(1, ids.Length).First(n => tokenizer.Decode(ids[..n]).EndsWith('\uFFFD'));
        var cut = ids[..n];

        var stream = new StreamingText(t => tokenizer.Decode(t));
        var shown = string.Concat(cut.Select(stream.Add));

        Assert.Equal("ok ", shown);
        var rest = stream.Finish();
        Assert.StartsWith("\uFFFD", rest);
        Assert.Equal(tokenizer.Decode(cut), shown + rest);
    }

    [Theory]
    [InlineData("{\"prompt\": \"hi\"}", "line 1 has neither \"messages\" nor \"query\"")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}", "line 1 has no user message")]
    [InlineData("{\"query\": \"hi\", \"history\": [[\"a\"]]}", "line 1 has history entry 1")]
    [InlineData("\n\n[1]", "line 3 is not a JSON object")]
    public void BadRowsAreUsageErrorsNamingTheLine(string rows, string message)
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("data.jsonl"), rows + "\n");

        var run = CliRun.Of(Infer("--val_dataset", temp.File("data.jsonl")));

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains($"{temp.File("data.jsonl")} {message}", Assert.Single(run.StderrLines));
    }

    [Theory]
    [InlineData("--result_path", "out.jsonl")]
    [InlineData("--max_batch_size", "2")]
    public void DatasetFlagsWithoutDatasetAreRefused(string flag, string value)
    {
        var run = CliInput.Of("", Infer(flag, value));

        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"{flag} applies to --val_dataset", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void InputIdsAndValDatasetTogetherAreRefused()
    {
        var run = CliRun.Of(Infer("--input_ids", "1 2", "--val_dataset", "x.jsonl"));

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--input_ids and --val_dataset", Assert.Single(run.StderrLines));
    }
}
