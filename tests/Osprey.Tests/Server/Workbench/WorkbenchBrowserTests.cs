using System.Text.Json.Nodes;
using Osprey.Server.Workbench;
using Osprey.Tests.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Server.Workbench;

/// <summary>
/// <c>osprey web-ui</c> in Debian's headless Chromium, driven over the DevTools protocol: the Train form is filled for
/// the demo model and started, the loss chart gains points, Stop leaves a checkpoint, Resume continues it, a path
/// outside the allowed folders is refused on the page, a merge export runs, a restarted web UI lists the same jobs, and
/// the checkpoint answers in the Chat tab, eval results replace the charts of eval jobs, and a GRPO run from the RLHF
/// form draws its reward series. Screenshots of every tab (1280×800, and a narrow window) are saved to
/// bin/.../web-ui-screenshots. One browser and one flow, to keep the suite fast.
/// </summary>
public sealed class WorkbenchBrowserTests(ITestOutputHelper log) : IAsyncLifetime
{
    readonly TempDirectory _dir = new();
    HeadlessChromium? _browser;
    WorkbenchHost? _host;

    static string Shots => Path.Combine(AppContext.BaseDirectory, "web-ui-screenshots");

    public async Task InitializeAsync()
    {
        File.Copy(Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl"), _dir.File("memorize.jsonl"));
        // GRPO prompts (one per generation batch of 2 completions).
        File.WriteAllLines(_dir.File("prompts.jsonl"), ["""{"messages":[{"role":"user","content":"Count to three."}]}""", """{"messages":[{"role":"user","content":"Name a colour."}]}"""]);
        _browser = await HeadlessChromium.StartAsync(TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            // Leave no job running behind the test.
            foreach (var job in JsonNode.Parse(await _host.Http.GetStringAsync("api/jobs"))!.AsArray())
                if ((string)job!["state"]! == "running") await _host.Http.PostAsync($"api/jobs/{job["id"]}/stop", null);
            await _host.DisposeAsync();
        }
        if (_browser is not null) await _browser.DisposeAsync();
        _dir.Dispose();
    }

    HeadlessChromium Browser => _browser!;

    WebUiOptions Options => new() { AllowedPaths = [_dir.Path, TestDemoModel.Folder] };

    async Task Open(string tab)
    {
        await Browser.SendAsync("Page.enable");
        await Browser.SendAsync("Page.navigate", new JsonObject { ["url"] = _host!.Url + "/#" + tab });
        await Browser.WaitForAsync("document.body?.dataset.ready === 'true' && document.body.dataset.jobs !== undefined", TimeSpan.FromSeconds(30));
    }

    Task<JsonNode?> Js(string script) => Browser.EvaluateAsync(script);

    Task Wait(string condition, int seconds = 90) => Browser.WaitForAsync(condition, TimeSpan.FromSeconds(seconds));

    async Task Fill(string verb, IReadOnlyDictionary<string, string> values)
    {
        await Wait($"document.getElementById('f-{verb}-{values.Keys.First()}') !== null", 30);
        foreach (var (name, value) in values)
        {
            await Js($$"""
                (() => { const input = document.getElementById('f-{{verb}}-{{name}}');
                  input.value = {{JsonValue.Create(value)!.ToJsonString()}};
                  input.dispatchEvent(new Event('input', { bubbles: true })); })()
                """);
        }
    }

    async Task Click(string selector) => await Js($"document.querySelector({JsonValue.Create(selector)!.ToJsonString()}).click()");

    async Task Shot(string name, int width = 1280, int height = 800)
    {
        await Browser.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = false });
        await Js("new Promise(r => { window.dispatchEvent(new Event('resize')); requestAnimationFrame(() => requestAnimationFrame(r)); })");
        var shot = await Browser.SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
        Directory.CreateDirectory(Shots);
        await File.WriteAllBytesAsync(Path.Combine(Shots, name + ".png"), Convert.FromBase64String((string)shot["data"]!));
    }

    string Selected => "document.querySelector('#panel-runs tbody tr.selected')";

    [Fact]
    public async Task TrainChartStopResumeRefuseExportRestartAndChatInTheBrowser()
    {
        _host = await WorkbenchHost.StartAsync(Options, WorkbenchHost.SetupFor(_dir.Path));
        await Open("train");
        var endless = WorkbenchJobTests.EndlessSft(TestDemoModel.Folder).ToDictionary(kv => kv.Key, kv => (string)kv.Value!);
        await Fill("sft", endless);
        await Wait("document.querySelector('#panel-train .command').textContent.includes('--save_steps 100000')", 30);
        var command = (string)(await Js("document.querySelector('#panel-train .command').textContent"))!;
        Assert.StartsWith($"osprey sft --model {TestDemoModel.Folder} ", command);
        // The memory-fit advisor's estimate sits beside Start (its numbers are checked against `osprey estimate` in WorkbenchServerTests).
        await Wait("Number(document.querySelector('#panel-train .estimate').dataset.peakBytes) > 0 && !document.querySelector('#panel-train .estimate').hidden", 30);
        await Js("document.querySelector('#panel-train details.more').open = true");
        await Shot("train");

        // Start: the page moves to Runs, and the loss chart gains points while the job runs.
        await Click("#panel-train .start");
        await Wait("document.body.dataset.tab === 'runs' && " + Selected + "?.dataset.state === 'running'", 30);
        await Wait("Number(document.querySelector('#panel-runs canvas[data-key=loss]')?.dataset.points) >= 2");
        var before = (int)(await Js("Number(document.querySelector('#panel-runs canvas[data-key=loss]').dataset.points)"))!;
        await Wait($"Number(document.querySelector('#panel-runs canvas[data-key=loss]').dataset.points) > {before}");
        await Shot("runs");

        // Tick labels follow the range (hand-written expectations): a learning rate moving by 1e-12 around 1e-4 reads as
        // offsets from 1e-4 instead of 1.000000e-4 four times; a range of 1e-8 fits in the labels; 1e-4 steps need one digit.
        Assert.Equal("1.00000000e-4|0 +1.0e-12 +2.0e-12 +3.0e-12", (string)(await Js("(t => t.offset + '|' + t.texts.join(' '))(OspreyCharts.tickLabels([1e-4, 1e-4 + 1e-12, 1e-4 + 2e-12, 1e-4 + 3e-12], 1e-12))"))!);
        Assert.Equal("null|1.0001e-4 1.0002e-4 1.0003e-4", (string)(await Js("(t => t.offset + '|' + t.texts.join(' '))(OspreyCharts.tickLabels([1.0001e-4, 1.0002e-4, 1.0003e-4], 1e-8))"))!);
        Assert.Equal("null|1.0e-4 2.0e-4 3.0e-4", (string)(await Js("(t => t.offset + '|' + t.texts.join(' '))(OspreyCharts.tickLabels([1e-4, 2e-4, 3e-4], 1e-4))"))!);
        // GRPO's records (keys as ms-swift's GRPO trainer logs them) get their reward charts, rewards/* before the rest.
        Assert.Equal("loss reward reward_std kl rewards/accuracy/mean rewards/accuracy/std completions/mean_length",
            (string)(await Js("OspreyCharts.chartKeys([{ global_step: 1, loss: 0.1, 'completions/mean_length': 12, reward: 0.5, reward_std: 0.1, kl: 0.01, 'rewards/accuracy/mean': 0.5, 'rewards/accuracy/std': 0.2, tokens_per_second: 9 }]).join(' ')"))!);
        // The run's own learning_rate chart: every tick label differs from its neighbours.
        var lrTicks = ((string?)await Js("document.querySelector('#panel-runs canvas[data-key=learning_rate]')?.dataset.ticks") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(lrTicks.Length, lrTicks.Distinct().Count());

        // Stop: a checkpoint is saved and shown.
        await Click("#panel-runs .stop");
        await Wait(Selected + "?.dataset.state === 'stopped' && document.querySelector('#panel-runs .ckpt').textContent.includes('checkpoint-')");
        var checkpoint = (string)(await Js("document.querySelector('#panel-runs .ckpt').textContent"))!;
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")), checkpoint);
        Assert.StartsWith(Path.Combine(_dir.Path, "out"), checkpoint);

        // Resume: a new job continues the same run from that checkpoint; stop it again after a step.
        var firstJob = (string)(await Js(Selected + ".dataset.job"))!;
        await Click("#panel-runs .resume");
        await Wait(Selected + $"?.dataset.job !== '{firstJob}' && " + Selected + "?.dataset.state === 'running'", 30);
        await Wait("document.querySelector('#panel-runs pre.log').textContent.includes('resuming')");
        Assert.Contains($"--resume_from_checkpoint {checkpoint}", (string)(await Js("document.querySelector('#panel-runs .job-command').textContent"))!);
        await Click("#panel-runs .stop");
        await Wait(Selected + "?.dataset.state === 'stopped'");
        var resumedCheckpoint = (string)(await Js("document.querySelector('#panel-runs .ckpt').textContent"))!;
        Assert.Equal(Path.GetDirectoryName(checkpoint), Path.GetDirectoryName(resumedCheckpoint));

        // A path outside the allowed folders is refused with the reason, and no job starts.
        await Js("document.getElementById('tab-train').click()");
        await Fill("sft", new Dictionary<string, string> { ["dataset"] = "/etc/passwd" });
        await Click("#panel-train .start");
        await Wait("!document.querySelector('#panel-train .form-error').hidden && document.querySelector('#panel-train .form-error').textContent.includes('outside the folders')", 30);
        Assert.Equal("2", (string)(await Js("document.body.dataset.jobs"))!);
        await Shot("train-refused");

        // Merge export of the resumed run's checkpoint, from its Runs page.
        await Js("document.getElementById('tab-runs').click()");
        await Click("#panel-runs .merge");
        await Wait("document.body.dataset.tab === 'export' && document.getElementById('f-export-adapters').value !== ''", 30);
        await Fill("export", new Dictionary<string, string> { ["output_dir"] = "merged" });
        await Wait("document.querySelector('#panel-export .command').textContent.includes('--output_dir merged')", 30);
        await Shot("export");
        await Click("#panel-export .start");
        await Wait(Selected + "?.dataset.state === 'succeeded' || " + Selected + "?.dataset.state === 'failed'", 120);
        Assert.Equal("succeeded", (string)(await Js(Selected + ".dataset.state"))!);
        // An export logs no steps and has no run folder: no empty charts section, no rows of dashes.
        Assert.Equal("true|true", (string)(await Js("document.querySelector('#panel-runs .chart-box').hidden + '|' + document.querySelector('#panel-runs .run-dir').hidden"))!);
        Assert.True(File.Exists(_dir.File(Path.Combine("merged", "config.json"))), string.Join(", ", Directory.GetFileSystemEntries(_dir.Path)));
        Assert.NotEmpty(Directory.GetFiles(_dir.File("merged"), "*.safetensors"));

        // A restarted web UI lists the same three jobs.
        var ids = (await Js("[...document.querySelectorAll('#panel-runs tbody tr')].map(r => r.dataset.job + ' ' + r.dataset.state).join(',')"))!.ToString();
        await _host.DisposeAsync();
        _host = null;
        _host = await WorkbenchHost.StartAsync(Options, WorkbenchHost.SetupFor(_dir.Path));
        await Open("runs");
        await Wait("document.querySelectorAll('#panel-runs tbody tr').length === 3", 30);
        Assert.Equal(ids, (await Js("[...document.querySelectorAll('#panel-runs tbody tr')].map(r => r.dataset.job + ' ' + r.dataset.state).join(',')"))!.ToString());

        // Chat with the stopped run's checkpoint: the Chat tab starts `osprey app` on it and embeds its page.
        await Js($"document.querySelector('#panel-runs tbody tr[data-job=\"{firstJob}\"]').click()");
        await Wait("!document.querySelector('#panel-runs .chat-with').hidden", 30);
        await Click("#panel-runs .chat-with");
        await Wait("document.querySelector('#panel-chat .chat-side').dataset.ready === 'true'", 120);
        await Wait("document.querySelector('#panel-chat .chat-frame').contentDocument?.body?.dataset.models >= 2", 60);
        // The embedded chat talks to the checkpoint's adapter, not to the base model the server lists first.
        var picked = (string)(await Js("document.querySelector('#panel-chat .chat-frame').contentDocument.getElementById('model').value"))!;
        var served = JsonNode.Parse(await _host.Http.GetStringAsync($"api/jobs/{await Js("document.querySelector('#panel-chat .chat-side').dataset.job")}/proxy/v1/models"))!["data"]!.AsArray();
        Assert.Equal((string)served.Single(m => m!["parent"] is not null)!["id"]!, picked);
        Assert.NotEqual((string)served[0]!["id"]!, picked);
        await Js("""
            (() => { const doc = document.querySelector('#panel-chat .chat-frame').contentDocument;
              doc.getElementById('max_tokens').value = '8';
              doc.getElementById('input').value = 'Hello';
              doc.getElementById('composer').requestSubmit(); })()
            """);
        await Wait("document.querySelector('#panel-chat .chat-frame').contentDocument.querySelector('#log li.assistant')?.dataset.done === 'true'", 60);
        var reply = (string?)await Js("document.querySelector('#panel-chat .chat-frame').contentDocument.querySelector('#log li.assistant').textContent");
        Assert.False(string.IsNullOrWhiteSpace(reply));
        await Shot("chat");

        // Two evaluations, of servers that always answer A and always answer C, shown as a table and bars and compared.
        // Gold letters in examples/eval/mcq, counted by hand: arith A, C, C, D; geo B, C, A.
        WorkbenchJobTests.CopyMcq(_dir.Path);
        using var alwaysA = new Osprey.Tests.Evaluation.UrlEvaluationTests.PatternServer("ANSWER: A", 0);
        using var alwaysC = new Osprey.Tests.Evaluation.UrlEvaluationTests.PatternServer("ANSWER: C", 0);
        var evalJobs = new List<string>();
        foreach (var (server, folder) in new[] { (alwaysA, "eval-a"), (alwaysC, "eval-c") })
        {
            await Js("document.getElementById('tab-eval').click()");
            await Fill("eval", WorkbenchJobTests.EvalOf(server.Url, folder).ToDictionary(kv => kv.Key, kv => (string)kv.Value!));
            await Wait($"document.querySelector('#panel-eval .command').textContent.includes('--eval_output_dir {folder}')", 30);
            await Click("#panel-eval .start");
            await Wait("document.body.dataset.tab === 'runs' && " + Selected + $"?.dataset.job && !{JsonValue.Create(evalJobs.ToArray())!.ToJsonString()}.includes(" + Selected + ".dataset.job)", 30);
            evalJobs.Add((string)(await Js(Selected + ".dataset.job"))!);
            await Wait(Selected + "?.dataset.state === 'succeeded' || " + Selected + "?.dataset.state === 'failed'", 90);
            Assert.Equal("succeeded", (string)(await Js(Selected + ".dataset.state"))!);
        }
        const string Scores = "[...document.querySelectorAll('#panel-runs .eval-table tr:is(.level-subset, .level-overall)[data-metric=acc]')].map(r => r.dataset.group + '=' + [...r.querySelectorAll('td.score')].map(c => c.textContent).join('/')).join(' ')";
        await Wait("document.querySelector('#panel-runs .eval').dataset.runs === '1'", 30);
        Assert.Equal("arith=0.5000 geo=0.3333 OVERALL=0.4286", (string)(await Js(Scores))!);
        // An evaluation has results, not a loss curve: the charts section is left out, not shown empty.
        Assert.True((bool)(await Js("document.querySelector('#panel-runs .chart-box').hidden"))!);
        await Js($"document.querySelector('#panel-runs tbody tr[data-job=\"{evalJobs[0]}\"] input[type=checkbox]').click()");
        await Wait("document.querySelector('#panel-runs .eval').dataset.runs === '2'", 30);
        // Selected run (always C) first, then the compared one (always A: 1/4, 1/3, 2/7).
        Assert.Equal("arith=0.5000/0.2500 geo=0.3333/0.3333 OVERALL=0.4286/0.2857", (string)(await Js(Scores))!);
        // Every row of the table is two bars (both runs have every row).
        Assert.Equal((string)(await Js("String(2 * document.querySelectorAll('#panel-runs .eval-table tbody tr').length)"))!, (string)(await Js("document.querySelector('#panel-runs .eval-chart').dataset.bars"))!);
        await Js("document.querySelector('#panel-runs .eval').scrollIntoView()");
        await Shot("eval-results");
        await Js($"document.querySelector('#panel-runs tbody tr[data-job=\"{evalJobs[0]}\"] input[type=checkbox]').click()");

        // GRPO from the RLHF form: two steps of the demo model with the built-in repetition and soft overlong rewards;
        // the reward series of its logging.jsonl are drawn, one point per logged step.
        await Js("document.getElementById('tab-rlhf').click()");
        await Fill("rlhf", new Dictionary<string, string>
        {
            ["model"] = TestDemoModel.Folder, ["rlhf_type"] = "grpo", ["dataset"] = "prompts.jsonl", ["reward_funcs"] = "repetition soft_overlong", ["soft_cache_length"] = "3", ["num_generations"] = "2",
            ["max_completion_length"] = "4", ["per_device_train_batch_size"] = "2", ["gradient_accumulation_steps"] = "1", ["max_steps"] = "2",
            ["logging_steps"] = "1", ["save_steps"] = "100", ["device"] = "cpu", ["load_from_cache_file"] = "false", ["output_dir"] = "grpo",
        });
        await Wait("document.querySelector('#panel-rlhf .command').textContent.includes('--output_dir grpo')", 30);
        Assert.Contains("--rlhf_type grpo", (string)(await Js("document.querySelector('#panel-rlhf .command').textContent"))!);
        await Click("#panel-rlhf .start");
        await Wait("document.body.dataset.tab === 'runs' && " + Selected + "?.dataset.job && document.querySelector('#panel-runs .job-command').textContent.includes('--rlhf_type grpo')", 30);
        await Wait(Selected + "?.dataset.state === 'succeeded' || " + Selected + "?.dataset.state === 'failed'", 120);
        Assert.True("succeeded" == (string)(await Js(Selected + ".dataset.state"))!, (string?)await Js("document.querySelector('#panel-runs pre.log').textContent"));
        var grpoRun = (string)(await Js("document.querySelector('#panel-runs .run-dir').textContent"))!;
        var grpoSteps = File.ReadAllLines(Path.Combine(grpoRun, "logging.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Where(r => r.ContainsKey("reward")).ToList();
        Assert.Equal(2, grpoSteps.Count);
        string[] rewardKeys = ["reward", "reward_std", "kl", "rewards/repetition/mean", "rewards/repetition/std", "rewards/soft_overlong/mean"];
        Assert.All(rewardKeys, k => Assert.All(grpoSteps, r => Assert.True(r.ContainsKey(k), k)));
        var pointsJs = "JSON.stringify(" + JsonValue.Create(rewardKeys)!.ToJsonString() + ".map(k => document.querySelector(`#panel-runs canvas[data-key=\"${k}\"]`)?.dataset.points ?? 'none'))";
        // Two logged steps: two points in each chart.
        await Wait($"{pointsJs} === '{JsonValue.Create(rewardKeys.Select(_ => "2").ToArray())!.ToJsonString()}'", 30);
        Assert.False((bool)(await Js("document.querySelector('#panel-runs .chart-box').hidden"))!);
        // Both steps are labelled on the x axis (the tick sum 1 + 5 x 0.2 falls short of 2 in floating point).
        Assert.Equal("1 2", (string)(await Js("document.querySelector('#panel-runs canvas[data-key=reward]').dataset.xticks"))!);
        await Shot("runs-grpo");

        foreach (var tab in new[] { "rlhf", "eval", "deploy", "hub" })
        {
            await Js($"document.getElementById('tab-{tab}').click()");
            await Wait($"document.querySelector('#panel-{tab} .command').textContent.startsWith('osprey ')", 30);
            await Shot(tab);
        }
        await Js("document.getElementById('tab-runs').click()");
        await Js("document.getElementById('lang').value = 'zh'; document.getElementById('lang').dispatchEvent(new Event('change'))");
        await Wait("document.getElementById('tab-train').textContent === '训练'", 10);
        await Shot("runs-zh");
        await Shot("runs-narrow", 420, 860);
        await Js("document.getElementById('tab-train').click()");
        await Shot("train-narrow", 420, 860);
        await Js("localStorage.removeItem('osprey-lang')");
        log.WriteLine($"screenshots in {Shots}");
    }
}
