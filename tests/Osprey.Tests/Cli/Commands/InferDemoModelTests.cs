using System.Text.RegularExpressions;

namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// <c>osprey infer</c> without --model: it builds the seeded demo model under $XDG_CACHE_HOME/osprey and runs
/// it. Each test points XDG_CACHE_HOME at a fresh temp folder, so the user's cache is never touched.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed partial class InferDemoModelTests
{
    private static string DemoFolder(string cache) => Path.Combine(cache, "osprey", "demo-llama-v1");

    // Token ids in, token ids out; without --input_ids the demo model chats instead (see below).
    private static CliRun Infer(string cache, params string[] flags)
    {
        using var _ = new EnvironmentVariableScope("XDG_CACHE_HOME", cache);
        return CliRun.Of(["infer", "--device", "cpu", "--input_ids", "1 17 42 99", .. flags]);
    }

    private static CliRun Chat(string cache, string stdin, params string[] flags)
    {
        using var _ = new EnvironmentVariableScope("XDG_CACHE_HOME", cache);
        return CliInput.Of(stdin, ["infer", "--device", "cpu", .. flags]);
    }

    [GeneratedRegex(@"^\[0\] (\d+)( \d+)*  \((eos|length)\)$")]
    private static partial Regex ResultLine();

    [Fact]
    public void WithoutModelItCreatesAndRunsTheDemoModelDeterministically()
    {
        using var cache = new TempDirectory();
        using var otherCache = new TempDirectory();
        var folder = DemoFolder(cache.Path);

        var first = Infer(cache.Path, "--max_new_tokens", "12");

        Assert.True(first.ExitCode == 0, first.ToString());
        var stderr = Assert.Single(first.StderrLines);
        Assert.Contains("demo model", stderr);
        Assert.Contains(folder, stderr);
        Assert.True(File.Exists(Path.Combine(folder, "config.json")));
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        var line = Assert.Single(first.StdoutLines);
        Assert.Matches(ResultLine(), line);
        Assert.True(line.Split(' ').Distinct().Count() > 3, $"the demo model's output should vary: {line}");

        // Again with the folder already there, and once more with the model rebuilt elsewhere from its seed.
        var reused = Infer(cache.Path, "--max_new_tokens", "12");
        var rebuilt = Infer(otherCache.Path, "--max_new_tokens", "12");
        Assert.Equal(first.Stdout, reused.Stdout);
        Assert.Equal(first.Stdout, rebuilt.Stdout);
        Assert.True(File.Exists(Path.Combine(DemoFolder(otherCache.Path), "model.safetensors")));
    }

    [Fact]
    public void SamplingIsReproducibleForASeedAndChangesWithIt()
    {
        using var cache = new TempDirectory();
        string[] sample = ["--temperature", "0.9", "--max_new_tokens", "16", "--ignore_eos", "true"];

        var seed5 = Infer(cache.Path, [.. sample, "--seed", "5"]);
        var seed5Again = Infer(cache.Path, [.. sample, "--seed", "5"]);
        var seed6 = Infer(cache.Path, [.. sample, "--seed", "6"]);
        var greedy = Infer(cache.Path, "--max_new_tokens", "16", "--ignore_eos", "true");

        Assert.True(seed5.ExitCode == 0, seed5.ToString());
        Assert.True(seed6.ExitCode == 0, seed6.ToString());
        Assert.Matches(ResultLine(), Assert.Single(seed5.StdoutLines));
        Assert.EndsWith("  (length)\n", seed5.Stdout);
        Assert.Equal(seed5.Stdout, seed5Again.Stdout);
        Assert.NotEqual(seed5.Stdout, seed6.Stdout);
        // A positive temperature alone turns sampling on.
        Assert.NotEqual(greedy.Stdout, seed5.Stdout);
    }

    [Fact]
    public void WithoutModelOrInputIdsItChatsWithTheDemoModel()
    {
        using var cache = new TempDirectory();

        var run = Chat(cache.Path, "hi\nexit\n", "--max_new_tokens", "6");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("demo model", run.StderrLines[0]);
        Assert.StartsWith("<<< hi\n", run.Stdout);
        Assert.EndsWith("\n<<< exit\n", run.Stdout);
        Assert.True(File.Exists(Path.Combine(DemoFolder(cache.Path), "tokenizer.json")));
        Assert.Contains("chat_template", File.ReadAllText(Path.Combine(DemoFolder(cache.Path), "tokenizer_config.json")));
    }

    [Fact]
    public void ADemoFolderFromBeforeTheTokenizerGetsOne()
    {
        using var cache = new TempDirectory();
        var ids = Infer(cache.Path, "--max_new_tokens", "12");
        File.Delete(Path.Combine(DemoFolder(cache.Path), "tokenizer.json"));
        File.Delete(Path.Combine(DemoFolder(cache.Path), "tokenizer_config.json"));
        var weights = File.GetLastWriteTimeUtc(Path.Combine(DemoFolder(cache.Path), "model.safetensors"));

        var chat = Chat(cache.Path, "hi\n", "--max_new_tokens", "6");
        var idsAgain = Infer(cache.Path, "--max_new_tokens", "12");

        Assert.True(chat.ExitCode == 0, chat.ToString());
        Assert.True(File.Exists(Path.Combine(DemoFolder(cache.Path), "tokenizer.json")));
        Assert.Equal(weights, File.GetLastWriteTimeUtc(Path.Combine(DemoFolder(cache.Path), "model.safetensors")));
        Assert.Equal(ids.Stdout, idsAgain.Stdout);
    }
}
