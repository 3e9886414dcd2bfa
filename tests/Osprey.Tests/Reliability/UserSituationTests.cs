using System.Text.Json.Nodes;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Training;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Reliability;

/// <summary>
/// Situations of the user's own making (a full disk, a config.json or adapter_config.json with impossible values, an
/// adapter whose config does not match its tensors) give one sentence naming the file and the fix, never "a bug in
/// osprey" or a native backtrace.
/// </summary>
public sealed class UserSituationTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    static string Peft(string name) => Path.Combine(TestPaths.Fixtures, "peft", name);

    static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    static void EditJson(string file, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        edit(json);
        File.WriteAllText(file, json.ToJsonString());
    }

    [Fact]
    public void ACheckpointThatCannotBeWrittenIsOneSentenceNamingTheFolder()
    {
        using var temp = new TempDirectory();
        // A file where the checkpoint's .tmp folder must go fails the save the way a full disk does (root ignores permissions).
        File.WriteAllText(temp.File("checkpoint-1.tmp"), "in the way");
        var run = CliRun.Of("sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", CliRun.Fixture("qwen2"), "--dataset", Memorize,
            "--max_steps", "1", "--save_steps", "1", "--output_dir", temp.Path, "--add_version", "false");
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.DoesNotContain("bug in osprey", run.Stderr);
        Assert.Contains(Path.Combine(temp.Path, "checkpoint-1"), run.Stderr);
        Assert.Contains("--output_dir", run.Stderr);
    }

    [Fact]
    public void AWriteFailureHalfwayThroughACheckpointRemovesItsTmpFolder()
    {
        using var temp = new TempDirectory();
        var final = temp.File("checkpoint-7");
        var e = Assert.Throws<OspreyException>(() => CheckpointWriter.WriteFolder(final, tmp =>
        {
            File.WriteAllText(Path.Combine(tmp, "adapter_model.safetensors"), "half");
            throw new IOException("No space left on device");
        }));
        Assert.Contains(final, e.Message);
        Assert.Contains("No space left on device", e.Message);
        Assert.Contains("free", e.Message);
        Assert.False(Directory.Exists(final + ".tmp"), "the .tmp folder is left behind");
        Assert.False(Directory.Exists(final));
    }

    [Theory]
    [InlineData("hidden_size", 1_000_000)]
    [InlineData("vocab_size", 2_000_000_000)]
    public void AConfigFarLargerThanItsWeightsIsRefusedBeforeAllocating(string field, int value)
    {
        using var temp = new TempDirectory();
        var model = temp.File("model");
        CopyFolder(CliRun.Fixture("qwen2"), model);
        EditJson(Path.Combine(model, "config.json"), c => c[field] = value);
        var run = CliRun.Of("export", "--model", model, "--output_dir", temp.File("out"), "--device", "cpu");
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.DoesNotContain("bug in osprey", run.Stderr);
        Assert.Contains(Path.Combine(model, "config.json"), run.Stderr);
        Assert.Contains(field, run.Stderr);
        Assert.Single(run.StderrLines, l => l.StartsWith("osprey: ", StringComparison.Ordinal) && l.Contains(field, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("lora_alpha", "\"x\"")]
    [InlineData("r", "\"eight\"")]
    [InlineData("use_rslora", "3")]
    [InlineData("target_modules", "[1, 2]")]
    public void AnAdapterConfigFieldOfTheWrongKindNamesTheFileAndField(string field, string json)
    {
        using var temp = new TempDirectory();
        CopyFolder(Peft("qwen2-qv"), temp.Path);
        var config = temp.File("adapter_config.json");
        EditJson(config, c => c[field] = JsonNode.Parse(json));
        var e = Assert.Throws<OspreyException>(() => PeftAdapter.ReadConfig(temp.Path));
        Assert.Contains(config, e.Message);
        Assert.Contains($"'{field}'", e.Message);
    }

    [Fact]
    public void AnAdapterWhoseTensorsAreNotItsTargetModulesIsRefused()
    {
        using var temp = new TempDirectory();
        CopyFolder(Peft("qwen2-qv"), temp.Path);
        EditJson(temp.File("adapter_config.json"), c => c["target_modules"] = new JsonArray("o_proj"));
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using (var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.Float32))
        {
            var e = Assert.Throws<OspreyException>(() => model.AddServingAdapter("a", temp.Path));
            Assert.Contains("target_modules", e.Message);
            Assert.Contains("q_proj", e.Message);
            Assert.Empty(model.ServingAdapterNames);
        }
        using (var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.Float32))
        {
            var e = Assert.Throws<OspreyException>(() => PeftAdapter.MergeInto(model, temp.Path));
            Assert.Contains("target_modules", e.Message);
        }
        // The unchanged fixture (q_proj v_proj) still serves.
        using (var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.Float32))
            Assert.Equal(1, model.AddServingAdapter("a", Peft("qwen2-qv")));
    }
}
