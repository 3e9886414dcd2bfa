using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Cli.Args;
using Osprey.Cli.Commands;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training;

namespace Osprey.Tests.Server;

/// <summary>
/// Adapters trained by <c>osprey sft</c> and <c>osprey rlhf</c> served by <c>osprey deploy --adapters</c>: each is a
/// model name of the server, requests for it and for the base share the engine, and each answer equals
/// <c>osprey infer</c>'s (the adapter merged at load) for the same conversation.
/// </summary>
public sealed partial class ServedAdapterTests
{
    static string Data(string name) => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", name);

    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex UrlPattern();

    [Fact]
    public async Task SftAndDpoAdaptersAnswerAsOspreyInferDoes()
    {
        using var temp = new TempDirectory();
        var sft = Path.Combine(temp.Path, "sft");
        var dpo = Path.Combine(temp.Path, "dpo");
        var common = new[] { "--device", "cpu", "--model", TestDemoModel.Folder, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--learning_rate", "1e-2", "--lora_rank", "8", "--save_steps", "20", "--add_version", "false" };
        var run = CliRun.Of(["sft", .. common, "--dataset", Data("memorize.jsonl"), "--max_steps", "20", "--output_dir", sft]);
        Assert.True(run.ExitCode == 0, run.ToString());
        run = CliRun.Of(["rlhf", "--rlhf_type", "dpo", .. common, "--dataset", Data("preference.jsonl"), "--max_steps", "20", "--output_dir", dpo]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var sftCkpt = Path.Combine(sft, "checkpoint-20");
        var dpoCkpt = Path.Combine(dpo, "checkpoint-20");

        // What osprey infer answers with each adapter merged at load, and with none.
        var question = File.ReadLines(Data("memorize.jsonl")).First();
        var questionText = JsonDocument.Parse(question).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()!;
        var rows = Path.Combine(temp.Path, "rows.jsonl");
        File.WriteAllText(rows, JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = questionText } } }) + "\n");
        string Infer(params string[] extra)
        {
            var r = CliRun.Of(["infer", "--device", "cpu", "--val_dataset", rows, "--max_new_tokens", "12", "--temperature", "0", .. extra]);
            Assert.True(r.ExitCode == 0, r.ToString());
            return JsonDocument.Parse(r.StdoutLines[^1]).RootElement.GetProperty("response").GetString()!;
        }
        var expectedSft = Infer("--adapters", sftCkpt);
        var expectedDpo = Infer("--adapters", dpoCkpt);
        var expectedBase = Infer("--model", TestDemoModel.Folder);

        var outText = new StringWriter();
        var stdout = TextWriter.Synchronized(outText);
        string Out() { lock (stdout) return outText.ToString(); }
        var options = new OptionReader(ParsedArgs.Parse(["--model", TestDemoModel.Folder, "--device", "cpu", "--port", "0", "--served_model_name", "base",
            "--adapters", $"memo={sftCkpt}", $"aligned={dpoCkpt}", "--max_batch_size", "4"]), "deploy");
        using var stop = new CancellationTokenSource();
        var exit = Task.Factory.StartNew(() => new DeployCommand().Run(options, stdout, TextWriter.Null, stop.Token), TaskCreationOptions.LongRunning);
        var until = DateTime.UtcNow.AddSeconds(60);
        while (!UrlPattern().IsMatch(Out()) && !exit.IsCompleted && DateTime.UtcNow < until) await Task.Delay(20);
        var url = UrlPattern().Match(Out()).Groups[1].Value;
        Assert.True(url.Length > 0, Out());

        using var http = new HttpClient { BaseAddress = new Uri(url) };
        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToArray();
        Assert.Equal(["base", "memo", "aligned"], models);
        async Task<string> Ask(string model)
        {
            var body = JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content = questionText } }, max_tokens = 12, temperature = 0 });
            var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }
        // All three at once: one batch with rows for the base and for each adapter.
        var answers = await Task.WhenAll(Ask("memo"), Ask("aligned"), Ask("base"));
        Assert.Equal(expectedSft, answers[0]);
        Assert.Equal(expectedDpo, answers[1]);
        Assert.Equal(expectedBase, answers[2]);
        Assert.NotEqual(expectedBase, expectedSft); // the memorised answer is not what the untrained model says

        stop.Cancel();
        Assert.Equal(0, await exit.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
