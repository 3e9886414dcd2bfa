using System.Diagnostics;
using System.Globalization;
using Osprey.Io;
using Osprey.Models;
using Osprey.Tests.Training;
using static TorchSharp.torch;

namespace Osprey.Tests.Reliability;

/// <summary>
/// SIGTERM during <c>osprey export</c> (and so <c>osprey merge-lora</c>, the same code) never leaves a folder under the
/// final name that is not complete: the export is written to <c>&lt;output&gt;.tmp</c>, renamed at the end, and a signal
/// stops it between tensors with exit 130 and the .tmp folder removed. Runs the real program as a child process.
/// </summary>
public sealed class ExportSignalTests
{
    [Fact]
    public async Task SigtermDuringExportLeavesNoPartialOutputFolder()
    {
        if (OperatingSystem.IsWindows()) return; // no SIGTERM there
        using var temp = new TempDirectory();
        var model = DeepDemoModel(temp.File("deep"));
        var output = temp.File("exported");
        await SigtermMidWay(output, "export", "export", "--model", model, "--output_dir", output, "--device", "cpu", "--max_shard_size", "20KB");
    }

    /// <summary>
    /// <c>osprey merge-lora</c> (ms-swift's older verb for export --merge_lora true) stopped by SIGTERM mid-write: the same
    /// promise, over an adapter of the 48-layer model that adapts q_proj in every layer.
    /// </summary>
    [Fact]
    public async Task SigtermDuringMergeLoraLeavesNoPartialOutputFolder()
    {
        if (OperatingSystem.IsWindows()) return;
        using var temp = new TempDirectory();
        var model = DeepDemoModel(temp.File("deep"));
        var adapter = DeepAdapter(temp.File("adapter"), model);
        var output = temp.File("merged");
        await SigtermMidWay(output, "export", "merge-lora", "--adapters", adapter, "--output_dir", output, "--max_shard_size", "20KB");
    }

    /// <summary>
    /// Runs <c>osprey ARGS</c> as a child process, sends SIGTERM once its first shard is on disk, and checks that no
    /// incomplete folder is left under <paramref name="output"/>'s name (exit 130 and the stop line, or a complete folder
    /// when the signal came after the rename: exit 0, or 143 once the command had finished and said what it wrote).
    /// </summary>
    static async Task SigtermMidWay(string output, string verb, params string[] args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "osprey.dll"));
        // One small shard per tensor or two, each flushed to disk: hundreds of files, so the signal lands mid-way.
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            // Wait until the export is writing: a shard is in its folder (output.tmp, or output itself for older code).
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(HasFiles(output + ".tmp") || HasFiles(output)))
            {
                if (process.HasExited) Assert.Fail($"osprey {args[0]} ended before writing: exit {process.ExitCode}, {await stderr}");
                Assert.True(DateTime.UtcNow < deadline, "no shard written within 60 s");
                await Task.Delay(5);
            }
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
                // kill fails only when there is no such process: the export finished between the check and the signal
                // (the checks below then want the complete folder).
                if (kill.ExitCode != 0) Assert.True(process.WaitForExit(10_000), $"kill -TERM failed (exit {kill.ExitCode}) while osprey {args[0]} was still running");
            }
            Assert.True(process.WaitForExit(60_000), $"osprey {args[0]} did not stop within 60 s of SIGTERM");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        var (outText, errText) = (await stdout, await stderr);
        var log = $"exit {process.ExitCode}\n--- stdout\n{outText}--- stderr\n{errText}";
        Assert.False(Directory.Exists(output + ".tmp"), log);
        // The signal came after the rename: then the folder is complete. The process exits 0, or 143 (SIGTERM's default
        // end) when the signal lands after the command had finished and printed what it wrote, while the runtime was
        // shutting down (seen once in a CI-sized run).
        var finishedFirst = process.ExitCode == 143 && outText.Contains($"osprey: wrote {output}", StringComparison.Ordinal);
        if (process.ExitCode == 0 || finishedFirst)
        {
            Assert.True(File.Exists(Path.Combine(output, "model.safetensors.index.json")) && File.Exists(Path.Combine(output, "config.json")), log);
            return;
        }
        Assert.True(process.ExitCode == 130, log);
        Assert.False(Directory.Exists(output), log);
        Assert.Equal($"osprey: {verb} stopped; {output} was not written.", errText.Trim().Split('\n')[^1]);
    }

    [Fact]
    public void AnExportThatCompletesLeavesNoTmpFolder()
    {
        using var temp = new TempDirectory();
        var output = temp.File("exported");
        var run = Cli.Commands.CliRun.Of(["export", "--model", TestDemoModel.Folder, "--output_dir", output, "--device", "cpu", "--max_shard_size", "20KB"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.False(Directory.Exists(output + ".tmp"));
        Assert.True(File.Exists(Path.Combine(output, "config.json")), run.ToString());
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors.index.json")), run.ToString());
    }

    static bool HasFiles(string directory)
    {
        try { return Directory.Exists(directory) && Directory.EnumerateFiles(directory).Any(); }
        catch (DirectoryNotFoundException) { return false; } // renamed while we looked
    }

    /// <summary>The demo model with 48 layers (about 9 MB in float32): the same tokenizer, many tensors.</summary>
    static string DeepDemoModel(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
            File.Copy(Path.Combine(TestDemoModel.Folder, name), Path.Combine(directory, name));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestDemoModel.Folder, "config.json")))!.AsObject();
        config["num_hidden_layers"] = 48;
        var text = config.ToJsonString();
        var spec = new Osprey.Models.Llama.LlamaFamily().ReadSpec(System.Text.Json.JsonDocument.Parse(text), "deep config.json");
        using (var model = new CausalLM(spec, ScalarType.Float32, CPU))
            SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), model.CheckpointTensors());
        File.WriteAllText(Path.Combine(directory, "config.json"), text);
        return directory;
    }

    /// <summary>
    /// A PEFT LoRA adapter (adapter_config.json and adapter_model.safetensors as PEFT names them) for
    /// <paramref name="model"/> adapting q_proj in every layer, r 2, with small random weights.
    /// </summary>
    static string DeepAdapter(string directory, string model)
    {
        Directory.CreateDirectory(directory);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json")));
        var c = doc.RootElement;
        int hidden = c.GetProperty("hidden_size").GetInt32(), layers = c.GetProperty("num_hidden_layers").GetInt32();
        var qOut = c.GetProperty("num_attention_heads").GetInt32() * c.GetProperty("head_dim").GetInt32();
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["peft_type"] = "LORA", ["task_type"] = "CAUSAL_LM", ["base_model_name_or_path"] = model,
            ["r"] = 2, ["lora_alpha"] = 4, ["lora_dropout"] = 0.0, ["bias"] = "none",
            ["target_modules"] = new System.Text.Json.Nodes.JsonArray("q_proj"),
        };
        File.WriteAllText(Path.Combine(directory, "adapter_config.json"), config.ToJsonString());
        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            for (var i = 0; i < layers; i++)
            {
                var prefix = $"base_model.model.model.layers.{i}.self_attn.q_proj";
                tensors.Add(new($"{prefix}.lora_A.weight", randn(2, hidden) * 0.01f));
                tensors.Add(new($"{prefix}.lora_B.weight", randn(qOut, 2) * 0.01f));
            }
            SafetensorsWriter.Write(Path.Combine(directory, "adapter_model.safetensors"), tensors);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        return directory;
    }
}
