using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Hub.Download;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Hub.Download;
using Osprey.Tests.Hub.ModelScope;
using Parquet.Serialization;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// mmlu and gsm8k by name, downloaded through the hub client from the fake Hugging Face hub on 127.0.0.1 that the
/// hub tests use, in the hubs' Parquet layout, with made-up rows written here; scored over a pattern server whose
/// accuracy is known by hand.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class HubBenchmarkTests
{
    public sealed class McRow
    {
        public string question { get; set; } = "";
        public string subject { get; set; } = "";
        public string[] choices { get; set; } = [];
        public long answer { get; set; }
    }

    public sealed class MathRow
    {
        public string question { get; set; } = "";
        public string answer { get; set; } = "";
    }

    static async Task<FakeFile> Parquet<T>(string path, T[] rows)
    {
        using var stream = new MemoryStream();
        await ParquetSerializer.SerializeAsync(rows, stream);
        return new FakeFile(path, stream.ToArray(), true);
    }

    [Fact]
    public async Task MmluAndGsm8k_ByName_ComeFromTheHubAndScoreAsExpected()
    {
        await using var hub = new FakeHubServer();
        McRow Mc(string q, long answer) => new() { question = q, subject = "x", choices = ["w", "x", "y", "z"], answer = answer };
        hub.Add(new FakeRepo("cais/mmlu", HubRepoType.Dataset, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes("mmlu"))),
        [
            await Parquet("made_up_algebra/test-00000-of-00001.parquet", new[] { Mc("q1", 0), Mc("q2", 1), Mc("q3", 0) }),
            await Parquet("made_up_algebra/dev-00000-of-00001.parquet", new[] { Mc("d1", 2) }),
            await Parquet("made_up_history/test-00000-of-00001.parquet", new[] { Mc("q4", 3), Mc("q5", 0) }),
            await Parquet("all/test-00000-of-00001.parquet", new[] { Mc("q1", 0) }),
        ]));
        hub.Add(new FakeRepo("openai/gsm8k", HubRepoType.Dataset, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes("gsm8k"))),
        [
            await Parquet("main/test-00000-of-00001.parquet", new[] { new MathRow { question = "2 crates of 3?", answer = "2 * 3 = 6\n#### 6" }, new MathRow { question = "1 + 1?", answer = "#### 2" } }),
        ]));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", hub.Url);
        using var hubCache = new EnvironmentVariableScope("HF_HUB_CACHE", Path.Combine(cache.Path, "hub"));
        using var datasets = new EnvironmentVariableScope("HF_DATASETS_CACHE", Path.Combine(cache.Path, "datasets"));
        using var msCache = new EnvironmentVariableScope("MODELSCOPE_CACHE", Path.Combine(cache.Path, "ms"));
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);

        // Answers "A" with the number 6: mmlu golds A,B,A | D,A → 2/3 and 1/2; gsm8k golds 6, 2 → 1/2.
        using var server = new UrlEvaluationTests.PatternServer("ANSWER: A\nANSWER: 6", failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--use_hf", "true", "--eval_dataset", "mmlu", "gsm8k", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | mmlu | acc | made_up_algebra | 3 | 0.6667 |", run.Stdout);
        Assert.Contains("| m | mmlu | acc | made_up_history | 2 | 0.5000 |", run.Stdout);
        Assert.Contains("| m | mmlu | acc | OVERALL | 5 | 0.6000 |", run.Stdout);
        Assert.Contains("| m | gsm8k | acc | OVERALL | 2 | 0.5000 |", run.Stdout);
        Assert.Contains(hub.Requests, r => r.Path.Contains("cais/mmlu", StringComparison.Ordinal));
        var prompts = File.ReadAllLines(Path.Combine(output.Path, "predictions.jsonl")).Select(l => (string)JsonNode.Parse(l)!["prompt"]!).ToList();
        Assert.Contains(prompts, p => p.Contains("q1\n\nA) w\nB) x\nC) y\nD) z", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Gsm8k_ByName_ComesFromModelScopeByDefault_UnderEvalScopesId()
    {
        await using var ms = new ModelScopeTestServer();
        using var file = new MemoryStream();
        await ParquetSerializer.SerializeAsync(new[] { new MathRow { question = "3 + 4?", answer = "3 + 4 = 7\n#### 7" } }, file);
        ms.Add(new MsRepo("AI-ModelScope/gsm8k", HubRepoType.Dataset).With("master", ("main/test-00000-of-00001.parquet", file.ToArray())));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var domain = new EnvironmentVariableScope("MODELSCOPE_DOMAIN", ms.Url);
        using var msCache = new EnvironmentVariableScope("MODELSCOPE_CACHE", cache.Path);
        using var useHf = new EnvironmentVariableScope("USE_HF", null);
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);
        using var server = new UrlEvaluationTests.PatternServer("7 it is.\nANSWER: 7", failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "gsm8k", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | gsm8k | acc | OVERALL | 1 | 1.0000 |", run.Stdout);
        Assert.Contains(ms.Requests, r => r.Path.Contains("AI-ModelScope/gsm8k", StringComparison.Ordinal));
    }
}
