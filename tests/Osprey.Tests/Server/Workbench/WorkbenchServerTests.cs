using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Server.Workbench;
using Osprey.Tests.Cli.Commands;

namespace Osprey.Tests.Server.Workbench;

/// <summary>
/// <c>osprey web-ui</c>'s HTTP API on a real Kestrel at 127.0.0.1: forms from the flag declarations, refused exactly as
/// the command line refuses them, paths held to the allowed folders, the key off loopback and the body limit.
/// </summary>
public sealed class WorkbenchServerTests : IDisposable
{
    readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    Task<WorkbenchHost> Start(WebUiOptions? options = null) =>
        WorkbenchHost.StartAsync(options ?? new WebUiOptions { AllowedPaths = [_dir.Path] }, WorkbenchHost.SetupFor(_dir.Path));

    static async Task<(HttpStatusCode Status, JsonNode? Body)> Post(HttpClient http, string path, JsonObject body)
    {
        using var response = await http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    static JsonObject Form(string verb, JsonObject values) => new() { ["verb"] = verb, ["values"] = values };

    [Fact]
    public async Task TheSftSchemaHasEveryFlagOfTheCommandsHelpWithItsDefaultsAndChoices()
    {
        await using var host = await Start();
        var schema = JsonNode.Parse(await host.Http.GetStringAsync("api/verbs/sft/schema"))!;
        var options = schema["options"]!.AsArray().Select(o => o!).ToList();
        // ms-swift's documented defaults: LoRA training, rank 8, alpha 32.
        var rank = options.Single(o => (string)o["name"]! == "lora_rank");
        Assert.Equal("int", (string)rank["kind"]!);
        Assert.Equal(8, (int)rank["default"]!);
        Assert.True((bool)rank["common"]!);
        Assert.Equal(32, (int)options.Single(o => (string)o["name"]! == "lora_alpha")["default"]!);
        var trainType = options.Single(o => (string)o["name"]! == "train_type");
        Assert.Equal("lora", (string)trainType["default"]!);
        Assert.Contains("full", trainType["choices"]!.AsArray().Select(c => (string)c!));
        Assert.True((bool)options.Single(o => (string)o["name"]! == "output_dir")["path"]!);
        Assert.Null(options.Single(o => (string)o["name"]! == "hub_token")["default"]);

        // The same flags, help texts and defaults as `osprey sft --help` prints.
        var help = CliRun.Of("sft", "--help");
        Assert.Equal(0, help.ExitCode);
        var flat = string.Join(" ", help.Stdout.Split('\n').Select(l => l.Trim()));
        foreach (var option in options)
        {
            Assert.Contains("--" + (string)option!["name"]! + " ", help.Stdout);
            Assert.Contains((string)option["help"]!, flat);
        }
        // ...and no flag of its "Flags:" section is missing from the form.
        var section = help.Stdout[(help.Stdout.IndexOf("Flags:\n", StringComparison.Ordinal) + 7)..];
        section = section[..section.IndexOf("\n\n", StringComparison.Ordinal)];
        var helpNames = section.Split('\n').Where(l => l.StartsWith("  --", StringComparison.Ordinal)).Select(l => l[4..].Split(' ')[0]).ToList();
        Assert.Equal(helpNames, options.Select(o => (string)o["name"]!));
    }

    [Fact]
    public async Task AFormIsRefusedWithTheCommandLinesOwnMessageAndAGoodOneBecomesItsCommand()
    {
        await using var host = await Start();
        var (status, body) = await Post(host.Http, "api/command", Form("sft", new JsonObject { ["lora_rank"] = "many" }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var message = (string)body!["error"]!["message"]!;
        var cli = CliRun.Of("sft", "--lora_rank", "many");
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains(message, cli.Stderr);

        (status, body) = await Post(host.Http, "api/command", Form("sft", new JsonObject { ["lora_rankk"] = "8" }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("--lora_rankk", (string)body!["error"]!["message"]!);

        (status, body) = await Post(host.Http, "api/command", Form("sft", new JsonObject
        {
            ["learning_rate"] = 0.0002, ["model"] = "Qwen/Qwen2.5-0.5B", ["dataset"] = new JsonArray("a b.jsonl", "c.jsonl#50"), ["lora_rank"] = "", ["system"] = "it's",
        }));
        Assert.Equal(HttpStatusCode.OK, status);
        // Declaration order (model group first), empty fields left out, quoted as a POSIX shell reads it.
        Assert.Equal("osprey sft --model Qwen/Qwen2.5-0.5B --dataset 'a b.jsonl' c.jsonl#50 --system 'it'\\''s' --learning_rate 0.0002", (string)body!["command"]!);

        (status, body) = await Post(host.Http, "api/command", Form("bash", new JsonObject { ["c"] = "rm -rf /" }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not a verb this web UI runs", (string)body!["error"]!["message"]!);
        (status, _) = await Post(host.Http, "api/jobs", Form("web-ui", []));
        Assert.Equal(HttpStatusCode.BadRequest, status);
    }

    [Fact]
    public async Task PathsOutsideTheAllowedFoldersAreRefusedThroughDotsAndLinksAlike()
    {
        var allowed = Directory.CreateDirectory(_dir.File("allowed")).FullName;
        File.WriteAllText(Path.Combine(allowed, "data.jsonl"), "{}\n");
        File.CreateSymbolicLink(Path.Combine(allowed, "etc"), "/etc");
        await using var host = await WorkbenchHost.StartAsync(new WebUiOptions { AllowedPaths = [allowed] }, WorkbenchHost.SetupFor(allowed));
        foreach (var (flag, value) in new[] { ("dataset", "/etc/passwd"), ("dataset", "../outside.jsonl"), ("dataset", "etc/passwd"), ("output_dir", "/tmp/elsewhere"), ("model", "./etc"), ("resume_from_checkpoint", "sub/../../x") })
        {
            var (status, body) = await Post(host.Http, "api/jobs", Form("sft", new JsonObject { ["model"] = "org/model", [flag] = value }));
            Assert.True(status == HttpStatusCode.BadRequest, $"--{flag} {value}: {status}");
            Assert.Contains("outside the folders", (string)body!["error"]!["message"]!);
        }
        foreach (var (flag, value) in new[] { ("dataset", "data.jsonl"), ("dataset", Path.Combine(allowed, "data.jsonl") + "#5"), ("model", "Qwen/Qwen2.5-0.5B"), ("output_dir", "out/new") })
        {
            var (status, body) = await Post(host.Http, "api/command", Form("sft", new JsonObject { ["model"] = "org/model", [flag] = value }));
            Assert.True(status == HttpStatusCode.OK, $"--{flag} {value}: {body}");
        }
        Assert.Empty(JsonNode.Parse(await host.Http.GetStringAsync("api/jobs"))!.AsArray());
    }

    [Fact]
    public async Task ListeningBeyondThisMachineNeedsAKeyAndTheKeyGuardsTheApi()
    {
        var e = Assert.Throws<OspreyException>(() => WorkbenchServer.Build(new WebUiOptions { Host = "0.0.0.0", Port = 0 }, WorkbenchHost.SetupFor(_dir.Path)));
        Assert.Contains("--api_key", e.Message);
        var cli = CliRun.Of("web-ui", "--host", "0.0.0.0", "--port", "0");
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("--api_key", cli.Stderr);

        await using var host = await Start(new WebUiOptions { ApiKey = "s3cret", AllowedPaths = [_dir.Path] });
        using (var response = await host.Http.GetAsync("api/jobs")) Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using (var page = await host.Http.GetAsync("")) Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/jobs") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "s3cret") } };
        using (var ok = await host.Http.SendAsync(request)) Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task ABodyOverTheLimitIsRefused()
    {
        await using var host = await Start();
        var big = "{\"verb\": \"sft\", \"values\": {\"system\": \"" + new string('x', (int)WorkbenchServer.MaxRequestBodyBytes + 10) + "\"}}";
        using var response = await host.Http.PostAsync("api/command", new StringContent(big, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task ATrainingFormsMemoryEstimateIsTheOneOspreyEstimatePrintsForTheSameFlags()
    {
        await using var host = await Start(new WebUiOptions { AllowedPaths = [_dir.Path, Osprey.Tests.Training.TestDemoModel.Folder] });
        var model = Osprey.Tests.Training.TestDemoModel.Folder;
        foreach (var (verb, extra) in new[] { ("sft", new[] { "lora_rank", "16" }), ("sft", new[] { "per_device_train_batch_size", "4" }), ("rlhf", new[] { "max_length", "512" }) })
        {
            // dataset and output_dir are not estimate's flags: the page's estimate leaves them out, as they change no memory.
            var (status, body) = await Post(host.Http, "api/estimate", Form(verb, new JsonObject { ["model"] = model, ["dataset"] = "d.jsonl", ["output_dir"] = "out", [extra[0]] = extra[1] }));
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var cli = CliRun.Of("estimate", "--model", model, "--" + extra[0], extra[1]);
            Assert.True(cli.ExitCode == 0, cli.ToString());
            var peak = cli.Stdout.Split('\n').Single(l => l.StartsWith("peak ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            Assert.Equal(peak, ((long)body!["peak_bytes"]! / 1073741824.0).ToString("F2", System.Globalization.CultureInfo.InvariantCulture));
            Assert.Contains(((long)body["trainable_parameters"]!).ToString("N0", System.Globalization.CultureInfo.InvariantCulture), cli.Stdout);
        }
        var (refused, error) = await Post(host.Http, "api/estimate", Form("sft", new JsonObject { ["dataset"] = "d.jsonl" }));
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Contains("--model", (string)error!["error"]!["message"]!);
    }

    [Fact]
    public async Task TheRlhfFormOffersGrpoWithItsFlagsAndBuildsItsCommand()
    {
        await using var host = await Start();
        var options = JsonNode.Parse(await host.Http.GetStringAsync("api/verbs/rlhf/schema"))!["options"]!.AsArray();
        var rlhfType = options.Single(o => (string)o!["name"]! == "rlhf_type")!;
        // ms-swift's rlhf_type values, grpo among them.
        Assert.Equal(["dpo", "kto", "orpo", "simpo", "cpo", "rm", "grpo"], rlhfType["choices"]!.AsArray().Select(c => (string)c!).Intersect(["dpo", "kto", "orpo", "simpo", "cpo", "rm", "grpo"]).ToArray());
        Assert.Contains(options, o => (string)o!["name"]! == "num_generations");
        Assert.Contains(options, o => (string)o!["name"]! == "reward_funcs");
        var (status, body) = await Post(host.Http, "api/command", Form("rlhf", new JsonObject
        {
            ["rlhf_type"] = "grpo", ["model"] = "Qwen/Qwen2.5-0.5B", ["reward_funcs"] = new JsonArray("accuracy", "format"), ["num_generations"] = "4",
        }));
        Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
        Assert.Contains("--rlhf_type grpo", (string)body!["command"]!);
        Assert.Contains("--reward_funcs accuracy format", (string)body["command"]!);
        Assert.Contains("--num_generations 4", (string)body["command"]!);
    }
}
