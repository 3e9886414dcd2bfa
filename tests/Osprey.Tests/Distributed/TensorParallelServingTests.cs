using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using Osprey.Distributed;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Models;
using Osprey.Tests.Server;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Distributed;

/// <summary>
/// Tensor-parallel serving on the CPU: this process (or an <c>osprey deploy</c> child) is rank 0 and a real second
/// <c>osprey</c> process is rank 1, over the TCP collectives. The greedy ids must equal transformers' (the parity
/// fixtures' golden.json), for a model with q/k/v biases (qwen2: column-parallel biases sharded) and one with fused
/// qkv_proj and gate_up_proj (phi3); the steps the golden prompts do not reach (a chunked long prompt, an embedding)
/// must equal the single-process engine's.
/// </summary>
public sealed partial class TensorParallelServingTests
{
    static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    static string[] WorkerCommand(string folder) =>
        [Dotnet, Path.Combine(AppContext.BaseDirectory, "osprey.dll"), "deploy", "--model", folder, "--device", "cpu", "--torch_dtype", "float32", "--tensor_parallel_size", "2"];

    /// <summary>The longest any stage of a two-rank test may take (each takes about a second alone).</summary>
    static readonly TimeSpan Stage = TimeSpan.FromMinutes(3);

    static SamplingParams Greedy(CausalLM model, string folder, int maxTokens) =>
        SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(folder)) with { MaxTokens = maxTokens, DoSample = false, Temperature = 0 };

    [Theory(Timeout = 600_000)] // the whole test, loading included, fails after 10 minutes rather than waiting forever
    [InlineData("qwen2")]
    [InlineData("phi3")]
    public async Task TwoCpuRanks_GreedyEqualsTransformers_AndEveryEngineStepEqualsOneProcess(string family)
    {
        var c = ParityCase.Load(CliRun.Fixture(family));
        var folder = c.Directory;
        var log = new StringWriter();
        var tokenizer = Tokenizer.Load(folder);
        var prompts = c.IntLists("prompts");
        var golden = c.IntLists("greedy_single");
        var maxTokens = c.Golden.GetProperty("max_new_tokens").GetInt32();
        // Longer than the 16-token prefill chunk: prefilled in the staging row, then copied into a running row.
        int[] longPrompt = [.. prompts.SelectMany(p => p), .. prompts.SelectMany(p => p), .. prompts.SelectMany(p => p)];
        var limits = new EngineOptions { MaxBatchSize = 4, MaxModelLen = 128, PrefillChunk = 16 };

        IReadOnlyList<EngineResult> tp, longOne;
        float[] tpEmbedding;
        using (var group = TensorParallelGroup.Start(2, WorkerCommand(folder), CPU, log))
        using (var model = CausalLM.Load(folder, new ModelLoadOptions { Device = DeviceSpec.Cpu, DType = "float32", TensorParallel = group }))
        {
            Assert.Equal(c.Golden.GetProperty("model_type").GetString(), model.Spec.ModelType);
            Assert.Equal(2, model.FullSpec.NumHeads / model.Spec.NumHeads);
            using var engine = new InferenceEngine(model, tokenizer, limits);
            var sampling = Greedy(model, folder, maxTokens);
            // Bounded waits: once (1 run in 3 of the full suite, session 17) this test waited forever with no engine
            // thread busy and rank 1 inside an all-reduce. One way to get there, since fixed (the test below): an
            // embedding whose pass failed in a way the engine does not recover from was left without a result. A
            // stuck stage now fails the test, naming itself, and leaving the block stops the worker.
            tp = await engine.GenerateAllAsync([.. prompts.Select(p => new EngineRequest([.. p], sampling))]).WaitAsync(Stage);
            longOne = await engine.GenerateAllAsync([new EngineRequest(longPrompt, sampling with { MaxTokens = 8 })]).WaitAsync(Stage);
            tpEmbedding = await engine.EmbedAsync(prompts[1]).WaitAsync(Stage);
        }
        Assert.Contains("tensor parallel over 2 ranks on the CPU", log.ToString());
        for (var i = 0; i < prompts.Count; i++)
            Assert.Equal(golden[i], tp[i].Tokens.Select(t => t.TokenId));

        using var single = CausalLM.Load(folder, new ModelLoadOptions { Device = DeviceSpec.Cpu, DType = "float32" });
        using var reference = new InferenceEngine(single, tokenizer, limits);
        var expectedLong = await reference.GenerateAllAsync([new EngineRequest(longPrompt, Greedy(single, folder, 8))]);
        Assert.Equal(expectedLong[0].Tokens.Select(t => t.TokenId), longOne[0].Tokens.Select(t => t.TokenId));
        var expectedEmbedding = await reference.EmbedAsync(prompts[1]);
        Assert.Equal(expectedEmbedding.Length, tpEmbedding.Length);
        for (var i = 0; i < expectedEmbedding.Length; i++) Assert.Equal(expectedEmbedding[i], tpEmbedding[i], 1e-4f);
    }

    [Fact(Timeout = 300_000)]
    public async Task AfterTheWorkerDies_AnEmbeddingFailsAndLaterRequestsAreRefused_NothingWaitsForever()
    {
        // An embedding is the worker thread's job once dequeued: when the step failed in a way the engine does not
        // recover from (the worker's socket closed, as here), that job was left without a result and its caller
        // waited forever; a request queued after the engine stopped was never read either.
        var folder = CliRun.Fixture("qwen2");
        var log = new StringWriter();
        using var group = TensorParallelGroup.Start(2, WorkerCommand(folder), CPU, log);
        using var model = CausalLM.Load(folder, new ModelLoadOptions { Device = DeviceSpec.Cpu, DType = "float32", TensorParallel = group });
        var tokenizer = Tokenizer.Load(folder);
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 2, MaxModelLen = 64 });
        int[] ids = [.. tokenizer.EncodeIds("a short input")];
        Assert.NotEmpty(await engine.EmbedAsync(ids).WaitAsync(Stage));
        using (var worker = Process.GetProcessById(int.Parse(WorkerPattern().Match(log.ToString()).Groups[1].Value, CultureInfo.InvariantCulture)))
        {
            worker.Kill();
            worker.WaitForExit();
        }
        var failed = await Assert.ThrowsAsync<EngineException>(() => engine.EmbedAsync(ids).WaitAsync(Stage));
        Assert.Contains("rank 1", failed.Message);
        var sampling = new SamplingParams { MaxTokens = 4, Temperature = 0 };
        var refused = await Assert.ThrowsAsync<EngineException>(() => engine.GenerateAsync(new EngineRequest(ids, sampling)).WaitAsync(Stage));
        Assert.Equal(EngineErrorKind.Unavailable, refused.Kind);
        Assert.Equal(EngineErrorKind.Unavailable, (await Assert.ThrowsAsync<EngineException>(() => engine.EmbedAsync(ids).WaitAsync(Stage))).Kind);
    }

    [Fact]
    public void ASizeThatDoesNotDivideTheKvHeadsIsRefusedBeforeAnyWorkerStarts()
    {
        var run = CliRun.Of("deploy", "--model", CliRun.Fixture("qwen2"), "--device", "cpu", "--port", "0", "--tensor_parallel_size", "4");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("num_key_value_heads is 2, which --tensor_parallel_size 4 does not divide", run.Stderr);
        Assert.DoesNotContain("tensor parallel over", run.Stderr);
        var zero = CliRun.Of("deploy", "--model", CliRun.Fixture("qwen2"), "--device", "cpu", "--tensor_parallel_size", "0");
        Assert.Contains("--tensor_parallel_size must be 1 or more, got 0.", zero.Stderr);
    }

    [Fact]
    public void AWorkerThatEndsBeforeJoiningEndsTheStartNamingItsRank()
    {
        // The worker command fails at once (an unknown verb), as a worker that cannot load its GPU would.
        string[] command = [Dotnet, Path.Combine(AppContext.BaseDirectory, "osprey.dll"), "no-such-verb"];
        var e = Assert.Throws<OspreyException>(() => TensorParallelGroup.Start(2, command, CPU, TextWriter.Null));
        Assert.Matches(@"^tensor-parallel rank 1 \(pid \d+\) exited with code [1-9]\d* before joining rank 0; its error is printed above\.$", e.Message);
    }

    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex UrlPattern();

    [GeneratedRegex(@"rank 1 pid (\d+)")]
    private static partial Regex WorkerPattern();

    [Fact]
    public async Task Deploy_TwoCpuRanks_AnswersTheOpenAiClientAsOneProcess_AndAKilledWorkerStopsTheServerNamingItsRank()
    {
        if (OperatingSystem.IsWindows()) return; // SIGKILL by kill(1)
        await using var reference = await TestServer.StartAsync("qwen2");
        var start = new ProcessStartInfo(Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "osprey.dll"));
        foreach (var a in new[] { "deploy", "--model", TestServer.Fixture("qwen2"), "--device", "cpu", "--torch_dtype", "float32", "--port", "0",
                     "--max_model_len", "256", "--max_batch_size", "4", "--tensor_parallel_size", "2", "--served_model_name", reference.Model.Name })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = new StringBuilder();
        var stderrDone = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
                lock (stderr) stderr.AppendLine(line);
        });
        string Err()
        {
            lock (stderr) return stderr.ToString();
        }
        try
        {
            var url = await Task.Run(async () =>
            {
                while (await process.StandardOutput.ReadLineAsync() is { } line)
                    if (UrlPattern().Match(line) is { Success: true } m) return m.Groups[1].Value;
                return null;
            }).WaitAsync(TimeSpan.FromSeconds(120));
            Assert.True(url is not null, $"no banner: {Err()}");
            var client = new ChatClient(reference.Model.Name, new ApiKeyCredential("unused"),
                new OpenAIClientOptions { Endpoint = new Uri(url + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });
            var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16 };
            string[] questions = ["Hello there", "What is two plus two?", "Name a colour"];
            // At once, so the ranks decode rows of different lengths together and compact rows as they finish.
            var answers = await Task.WhenAll(questions.Select(q => client.CompleteChatAsync([new UserChatMessage(q)], options)));
            for (var i = 0; i < questions.Length; i++)
            {
                ChatCompletion expected = await reference.Chat().CompleteChatAsync([new UserChatMessage(questions[i])], options);
                Assert.Equal(expected.Content[0].Text, answers[i].Value.Content[0].Text);
            }

            var worker = WorkerPattern().Match(Err());
            Assert.True(worker.Success, Err());
            using (var kill = Process.Start("kill", ["-KILL", worker.Groups[1].Value]))
                kill.WaitForExit();
            Assert.True(process.WaitForExit(60_000), $"the server did not stop after its worker died: {Err()}");
            await stderrDone;
            Assert.Equal(1, process.ExitCode);
            Assert.Contains($"osprey: tensor-parallel rank 1 (pid {worker.Groups[1].Value}) was killed by signal 9; the server stops.", Err());
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
