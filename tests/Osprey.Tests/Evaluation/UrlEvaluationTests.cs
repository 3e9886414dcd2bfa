using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Osprey.Evaluation;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Server;
using Osprey.Tokenization;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// <c>osprey eval --eval_url</c> against real HTTP servers on 127.0.0.1: a small listener that always answers
/// "ANSWER: A" (so the expected accuracy is the share of gold A's, counted by hand from examples/eval/mcq) and fails
/// its first request (so the retry is exercised); and Osprey's own OpenAI server over the qwen2 fixture, whose greedy
/// replies must equal those of the same model evaluated in-process.
/// </summary>
public sealed class UrlEvaluationTests
{
    static string Mcq => Path.Combine(TestPaths.RepoRoot, "examples", "eval", "mcq");

    /// <summary>An OpenAI-shaped chat endpoint answering <paramref name="reply"/>; the first <paramref name="failFirst"/> requests get HTTP 503.</summary>
    internal sealed class PatternServer : IDisposable
    {
        readonly HttpListener _listener = new();
        int _failures;
        public ConcurrentBag<JsonObject> Bodies { get; } = [];
        public ConcurrentBag<string?> Keys { get; } = [];
        public int Requests;
        public int MaxInFlight;
        int _inFlight;
        public string Url { get; }

        public PatternServer(string reply, int failFirst)
        {
            _failures = failFirst;
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Url = $"http://127.0.0.1:{port}/v1";
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try { context = await _listener.GetContextAsync(); }
                    catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
                    _ = Task.Run(async () =>
                    {
                        var now = Interlocked.Increment(ref _inFlight);
                        lock (Bodies) MaxInFlight = Math.Max(MaxInFlight, now);
                        Interlocked.Increment(ref Requests);
                        using var reader = new StreamReader(context.Request.InputStream);
                        var body = JsonNode.Parse(await reader.ReadToEndAsync())!.AsObject();
                        await Task.Delay(20);   // overlap concurrent requests, so the bound is observable
                        Interlocked.Decrement(ref _inFlight);
                        if (Interlocked.Decrement(ref _failures) >= 0)
                        {
                            context.Response.StatusCode = 503;
                            context.Response.Close();
                            return;
                        }
                        Bodies.Add(body);
                        Keys.Add(context.Request.Headers["Authorization"]);
                        var answer = new JsonObject
                        {
                            ["id"] = "x",
                            ["object"] = "chat.completion",
                            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = reply }, ["finish_reason"] = "stop" }),
                        };
                        var bytes = System.Text.Encoding.UTF8.GetBytes(answer.ToJsonString());
                        context.Response.ContentType = "application/json";
                        await context.Response.OutputStream.WriteAsync(bytes);
                        context.Response.Close();
                    });
                }
            });
        }

        public void Dispose() => _listener.Close();
    }

    static string McqArgs => new JsonObject { ["general_mcq"] = new JsonObject { ["local_path"] = Mcq, ["subset_list"] = new JsonArray("arith", "geo") } }.ToJsonString();

    [Fact]
    public void UrlMode_ReportsExactlyTheAccuracyOfAServerThatAlwaysAnswersA()
    {
        using var server = new PatternServer("I think so.\nANSWER: A", failFirst: 1);
        using var dir = new TempDirectory();
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--api_key", "K", "--model", "served-name", "--eval_dataset", "general_mcq",
            "--dataset_args", McqArgs, "--eval_output_dir", dir.Path, "--eval_num_proc", "2");
        Assert.True(run.ExitCode == 0, run.ToString());
        // Gold letters in examples/eval/mcq: arith A, C, C, D (one A of 4); geo B, C, A (one A of 3).
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "report.json")))!["rows"]!.AsArray();
        double Score(string group) => (double)report.Single(r => (string)r!["group"]! == group && (string)r["metric"]! == "acc")!["score"]!;
        Assert.Equal(0.25, Score("arith"));
        Assert.Equal(Math.Round(1.0 / 3, 4), Score("geo"));
        Assert.Equal(Math.Round(2.0 / 7, 4), Score("OVERALL"));
        Assert.Contains("| served-name | general_mcq | acc | OVERALL | 7 | 0.2857 |", run.Stdout);
        Assert.Equal(8, server.Requests);          // 7 items + the one retried after the 503
        Assert.InRange(server.MaxInFlight, 1, 2);   // --eval_num_proc 2
        Assert.All(server.Keys, k => Assert.Equal("Bearer K", k));
        Assert.All(server.Bodies, b => Assert.Equal("served-name", (string)b["model"]!));
        Assert.All(server.Bodies, b => Assert.Equal(0, (double)b["temperature"]!));
    }

    [Fact]
    public void AnInterruptedRun_ResumesFromTheAnsweredItems()
    {
        using var dir = new TempDirectory();
        using (var first = new PatternServer("ANSWER: C", failFirst: 0))
        {
            var run = CliRun.Of("eval", "--eval_url", first.Url, "--model", "m", "--eval_dataset", "general_mcq", "--dataset_args", McqArgs,
                "--eval_output_dir", dir.Path, "--eval_limit", "2");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Equal(4, first.Requests);   // 2 items of each subset
        }
        // An interruption in the middle of writing leaves a cut-off last line; it is dropped and its item asked again.
        var predictions = Path.Combine(dir.Path, EvalRunner.PredictionsFile);
        var kept = File.ReadAllLines(predictions);
        File.AppendAllText(predictions, "{\"key\":\"general_mcq/geo/2\",\"dat");
        using var second = new PatternServer("ANSWER: C", failFirst: 0);
        var resumed = CliRun.Of("eval", "--eval_url", second.Url, "--model", "m", "--eval_dataset", "general_mcq", "--dataset_args", McqArgs, "--eval_output_dir", dir.Path);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(3, second.Requests);      // arith 2 and 3, geo 2
        Assert.Contains("4 of 7 items already answered", resumed.Stderr);
        var lines = File.ReadAllLines(predictions);
        Assert.Equal(kept, lines.Take(4));
        Assert.Equal(7, lines.Length);
        // Gold C: arith items 1 and 2, geo item 1 → 3 of 7.
        Assert.Contains("| m | general_mcq | acc | OVERALL | 7 | 0.4286 |", resumed.Stdout);
    }

    [Fact]
    public async Task TheSameModel_LocallyAndThroughOspreyDeploy_GivesTheSameGreedyReplies()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var examples = Path.Combine(TestPaths.RepoRoot, "examples", "eval");
        var args = new JsonObject
        {
            ["general_qa"] = new JsonObject { ["local_path"] = Path.Combine(examples, "qa") },
            ["general_mcq"] = new JsonObject { ["local_path"] = Mcq, ["subset_list"] = new JsonArray("geo") },
        }.ToJsonString();
        EvalOptions Options(string output) => new()
        {
            Model = new Osprey.Hub.ModelOptions { Model = "qwen2" },
            // (gsm8k's prompt is longer than the fixture's 256-token context.)
            Datasets = ["general_qa", "general_mcq"],
            DatasetArgs = args,
            McMethod = "generation",
            GenerationConfig = "{\"max_tokens\": 12}",
            OutputDir = output,
        };
        using var local = new TempDirectory();
        using var remote = new TempDirectory();
        var folder = CliRun.Fixture("qwen2");
        var tokenizer = Tokenizer.Load(folder);
        var chat = Osprey.Inference.ChatPrompt.Create(tokenizer, folder, null);
        var options = Options(local.Path);
        var mine = await EvalRunner.RunAsync(options, () => new LocalEvalModel(CausalLM.Load(folder, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32), tokenizer, chat, null, options.Generation(), 1, "qwen2"), TextWriter.Null, TextWriter.Null);

        await using var server = await TestServer.StartAsync("qwen2");
        var served = Options(remote.Path) with { Url = server.BaseUrl + "/v1", Model = new Osprey.Hub.ModelOptions { Model = server.Model.Name } };
        var theirs = await EvalRunner.RunAsync(served, () => new UrlEvalModel(served.Url!, served.Model.Model!, null, served.Generation(), 2), TextWriter.Null, TextWriter.Null);

        string[] Replies(string dir) => File.ReadAllLines(Path.Combine(dir, EvalRunner.PredictionsFile))
            .Select(l => JsonNode.Parse(l)!).OrderBy(r => (string)r["key"]!, StringComparer.Ordinal).Select(r => $"{r["key"]}: {r["prediction"]}").ToArray();
        var a = Replies(local.Path);
        Assert.Equal(6, a.Length);
        Assert.Contains(a, r => r.Length > "general_qa/default/0: ".Length + 2);   // the model did write something
        Assert.Equal(a, Replies(remote.Path));
        Assert.Equal(mine.Rows.Select(r => (r.Group, r.Metric, r.Score)), theirs.Rows.Select(r => (r.Group, r.Metric, r.Score)));
    }
}
