using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Osprey.Server.Workbench;
using Osprey.Tests.Training;

namespace Osprey.Tests.Server.Workbench;

/// <summary>
/// A training job through the web UI's HTTP API on a real Kestrel: the real <c>osprey sft</c> runs as a child process
/// on the demo model, its logging.jsonl streams as server-sent events, a restarted web UI finds it still running, stop
/// saves a checkpoint (SIGTERM, exit 130) and resume continues from it.
/// </summary>
public sealed class WorkbenchJobTests : IDisposable
{
    readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The flags of a run that goes on until stopped, one logged step at a time.</summary>
    internal static JsonObject EndlessSft(string model) => new()
    {
        ["model"] = model, ["dataset"] = "memorize.jsonl", ["device"] = "cpu", ["load_from_cache_file"] = "false", ["max_steps"] = "100000",
        ["per_device_train_batch_size"] = "1", ["gradient_accumulation_steps"] = "1", ["logging_steps"] = "1", ["save_steps"] = "100000", ["output_dir"] = "out",
    };

    /// <summary>Reads the job's metric stream until a record with a global_step above <paramref name="after"/> arrives.</summary>
    internal static async Task<JsonNode> NextStep(HttpClient http, string id, long after)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var stream = await http.GetStreamAsync($"api/jobs/{id}/metrics", cancel.Token);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (line.StartsWith("event: end", StringComparison.Ordinal)) Assert.Fail($"job {id} ended before step {after + 1}:\n{await http.GetStringAsync($"api/jobs/{id}/log")}");
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var record = JsonNode.Parse(line[6..])!;
            if (record["loss"] is not null && (long)record["global_step"]! > after) return record;
        }
        throw new InvalidOperationException("the metric stream closed");
    }

    internal static async Task<JsonNode> WaitEnded(HttpClient http, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var job = JsonNode.Parse(await http.GetStringAsync($"api/jobs/{id}"))!;
            if ((string)job["state"]! is not ("running" or "stopping")) return job;
            Assert.True(DateTime.UtcNow < deadline, $"job {id} did not end within 90 s:\n{await http.GetStringAsync($"api/jobs/{id}/log")}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task ATrainingJobStreamsItsLossSurvivesARestartStopsIntoACheckpointAndResumes()
    {
        File.Copy(Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), _dir.File("memorize.jsonl"));
        var options = new WebUiOptions { AllowedPaths = [_dir.Path, TestDemoModel.Folder] };
        var setup = WorkbenchHost.SetupFor(_dir.Path);
        string id;
        int pid;
        await using (var first = await WorkbenchHost.StartAsync(options, setup))
        {
            using var started = await first.Http.PostAsJsonAsync("api/jobs", new JsonObject { ["verb"] = "sft", ["values"] = EndlessSft(TestDemoModel.Folder) });
            var job = JsonNode.Parse(await started.Content.ReadAsStringAsync())!;
            Assert.True(started.StatusCode == HttpStatusCode.Created, job.ToJsonString());
            id = (string)job["id"]!;
            pid = (int)job["pid"]!;
            await NextStep(first.Http, id, 0);
        }

        // A new web UI over the same folder: the job is listed, still running under the same process.
        await using var second = await WorkbenchHost.StartAsync(options, setup);
        var listed = JsonNode.Parse(await second.Http.GetStringAsync("api/jobs"))!.AsArray().Single()!;
        Assert.Equal(id, (string)listed["id"]!);
        Assert.Equal(pid, (int)listed["pid"]!);
        Assert.Equal("running", (string)listed["state"]!);
        var runDirectory = (string)listed["run_directory"]!;
        Assert.StartsWith(Path.Combine(_dir.Path, "out", "v0-"), runDirectory);

        using (var stop = await second.Http.PostAsync($"api/jobs/{id}/stop", null)) Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        var stopped = await WaitEnded(second.Http, id);
        Assert.Equal("stopped", (string)stopped["state"]!);
        var checkpoint = (string)stopped["last_checkpoint"]!;
        Assert.Equal(runDirectory, Path.GetDirectoryName(checkpoint));
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")), checkpoint);
        var step = long.Parse(Path.GetFileName(checkpoint)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture);

        using var resumed = await second.Http.PostAsync($"api/jobs/{id}/resume", null);
        var again = JsonNode.Parse(await resumed.Content.ReadAsStringAsync())!;
        Assert.True(resumed.StatusCode == HttpStatusCode.Created, again.ToJsonString());
        Assert.Equal(id, (string)again["resumed_from"]!);
        Assert.Equal(runDirectory, (string)again["run_directory"]!);
        Assert.Contains($"--resume_from_checkpoint {checkpoint}", (string)again["command"]!);
        var next = await NextStep(second.Http, (string)again["id"]!, step);
        Assert.Equal(step + 1, (long)next["global_step"]!);
        using (var stop = await second.Http.PostAsync($"api/jobs/{again["id"]}/stop", null)) Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        var ended = await WaitEnded(second.Http, (string)again["id"]!);
        Assert.Equal(130, (int)ended["exit_code"]!);
        Assert.Contains("resuming", await second.Http.GetStringAsync($"api/jobs/{again["id"]}/log"));

        using (var delete = await second.Http.DeleteAsync($"api/jobs/{id}")) Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.Equal((string)again["id"]!, (string)JsonNode.Parse(await second.Http.GetStringAsync("api/jobs"))!.AsArray().Single()!["id"]!);
        Assert.True(Directory.Exists(checkpoint), "deleting a job keeps its run folder");
    }

    /// <summary>The eval form's flags for <c>osprey eval --eval_url</c> on examples/eval/mcq (copied into the working folder).</summary>
    internal static JsonObject EvalOf(string url, string outputDir) => new()
    {
        ["model"] = "served", ["eval_url"] = url, ["eval_dataset"] = "general_mcq", ["eval_output_dir"] = outputDir,
        ["dataset_args"] = new JsonObject { ["general_mcq"] = new JsonObject { ["local_path"] = "mcq", ["subset_list"] = new JsonArray("arith", "geo") } }.ToJsonString(),
    };

    internal static void CopyMcq(string workingFolder)
    {
        var to = Directory.CreateDirectory(Path.Combine(workingFolder, "mcq")).FullName;
        foreach (var file in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "examples", "eval", "mcq"))) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    [Fact]
    public async Task AnEvalJobsReportIsServedForThePageAndOtherJobsHaveNone()
    {
        CopyMcq(_dir.Path);
        using var alwaysC = new Osprey.Tests.Evaluation.UrlEvaluationTests.PatternServer("ANSWER: C", 0);
        await using var host = await WorkbenchHost.StartAsync(new WebUiOptions { AllowedPaths = [_dir.Path] }, WorkbenchHost.SetupFor(_dir.Path));
        using var started = await host.Http.PostAsJsonAsync("api/jobs", new JsonObject { ["verb"] = "eval", ["values"] = EvalOf(alwaysC.Url, "eval-c") });
        var id = (string)JsonNode.Parse(await started.Content.ReadAsStringAsync())!["id"]!;
        using (var early = await host.Http.GetAsync($"api/jobs/{id}/eval"))
            if (early.StatusCode != HttpStatusCode.OK) Assert.Contains("report.json", await early.Content.ReadAsStringAsync());
        var ended = await WaitEnded(host.Http, id);
        Assert.True((string)ended["state"]! == "succeeded", await host.Http.GetStringAsync($"api/jobs/{id}/log"));

        // Gold letters in examples/eval/mcq, counted by hand: arith A, C, C, D; geo B, C, A. Always C: 2/4, 1/3, 3/7.
        var rows = JsonNode.Parse(await host.Http.GetStringAsync($"api/jobs/{id}/eval"))!["rows"]!.AsArray();
        double Score(string group) => (double)rows.Single(r => (string)r!["group"]! == group && (string)r["metric"]! == "acc")!["score"]!;
        Assert.Equal(0.5, Score("arith"));
        Assert.Equal(Math.Round(1.0 / 3, 4), Score("geo"));
        Assert.Equal(Math.Round(3.0 / 7, 4), Score("OVERALL"));

        using var notEval = await host.Http.PostAsJsonAsync("api/jobs", new JsonObject { ["verb"] = "cache", ["values"] = new JsonObject() });
        var other = (string)JsonNode.Parse(await notEval.Content.ReadAsStringAsync())!["id"]!;
        using var refused = await host.Http.GetAsync($"api/jobs/{other}/eval");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("not eval", await refused.Content.ReadAsStringAsync());
        await WaitEnded(host.Http, other);
    }
}
