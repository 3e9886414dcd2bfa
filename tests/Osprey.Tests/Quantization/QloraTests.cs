using System.Text.Json;
using Osprey.Io;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// QLoRA end to end on the CPU: LoRA memorises the quick-start set on a base quantized to NF4 at load and on a 4-bit
/// folder written by <c>osprey export</c>; the adapter answers through <c>osprey infer</c> on the quantized base;
/// resuming a QLoRA run is bit-identical; merging onto a quantized base writes a dense folder and says so.
/// </summary>
public sealed class QloraTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    static CliRun Sft(params string[] flags) => CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", .. flags]);

    static double[] Losses(string run) =>
        TrainingLog.ReadJsonl(Path.Combine(run, "logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();

    static string[] Memorise(TempDirectory temp, string model, params string[] extra)
    {
        var run = Sft(["--model", model, "--dataset", Memorize, "--num_train_epochs", "100", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-2", "--lora_rank", "16", "--output_dir", temp.File("run"), "--add_version", "false", .. extra]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var losses = Losses(temp.File("run"));
        Assert.True(losses[^1] < losses[0] / 10, $"loss should fall tenfold: {string.Join(", ", losses)}");
        return [run.Stderr, temp.File("run/checkpoint-100")];
    }

    static void AnswersMemorised(TempDirectory temp, params string[] flags)
    {
        var answers = temp.File("answers.jsonl");
        var infer = CliRun.Of(["infer", "--val_dataset", Memorize, "--result_path", answers, "--device", "cpu", .. flags]);
        Assert.True(infer.ExitCode == 0, infer.ToString());
        foreach (var line in File.ReadAllLines(answers))
        {
            using var doc = JsonDocument.Parse(line);
            Assert.Equal(doc.RootElement.GetProperty("messages")[1].GetProperty("content").GetString(), doc.RootElement.GetProperty("response").GetString());
        }
    }

    [Fact]
    public void LoraLearnsOnABaseQuantizedAtLoadAndAnswersOnIt()
    {
        using var temp = new TempDirectory();
        var (stderr, checkpoint) = (Memorise(temp, TestDemoModel.Folder, "--quant_method", "bnb", "--quant_bits", "4")) switch { var r => (r[0], r[1]) };
        Assert.Contains("quantized", stderr);
        Assert.Contains("nf4 with double quantization at load", stderr);
        AnswersMemorised(temp, "--adapters", checkpoint, "--quant_method", "bnb", "--quant_bits", "4");
    }

    [Fact]
    public void LoraLearnsOnAnExported4BitFolderAndMergeWritesADenseFolder()
    {
        using var temp = new TempDirectory();
        var export = CliRun.Of("export", "--model", TestDemoModel.Folder, "--quant_method", "bnb", "--quant_bits", "4", "--bnb_4bit_quant_type", "fp4", "--output_dir", temp.File("q4"));
        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.Contains("quantization_config", File.ReadAllText(temp.File("q4/config.json")));
        var (stderr, checkpoint) = Memorise(temp, temp.File("q4")) switch { var r => (r[0], r[1]) };
        Assert.Contains("bitsandbytes 4-bit layers", stderr);

        var merged = CliRun.Of("export", "--model", temp.File("q4"), "--adapters", checkpoint, "--merge_lora", "true", "--output_dir", temp.File("merged"));
        Assert.True(merged.ExitCode == 0, merged.ToString());
        Assert.Contains("dequantized", merged.Stderr);
        Assert.DoesNotContain("quantization_config", File.ReadAllText(temp.File("merged/config.json")));
        using (var f = SafetensorsFile.Open(temp.File("merged/model.safetensors")))
            Assert.DoesNotContain(f.Entries, e => e.Name.Contains("absmax", StringComparison.Ordinal));
        AnswersMemorised(temp, "--model", temp.File("merged"));
    }

    [Fact]
    public void ResumingAQloraRunIsBitIdentical()
    {
        using var temp = new TempDirectory();
        string[] common = ["--model", CliRun.Fixture("qwen2"), "--dataset", Memorize, "--max_steps", "6", "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "2", "--logging_steps", "1", "--save_steps", "3", "--learning_rate", "1e-2", "--warmup_ratio", "0.3",
            "--add_version", "false", "--quant_method", "bnb", "--quant_bits", "4", "--use_dora", "true"];
        var whole = Sft([.. common, "--output_dir", temp.File("whole")]);
        Assert.True(whole.ExitCode == 0, whole.ToString());
        var half = Sft([.. common, "--output_dir", temp.File("half")]);
        Assert.True(half.ExitCode == 0, half.ToString());
        Directory.Delete(temp.File("half/checkpoint-6"), true);
        var resumed = Sft([.. common, "--output_dir", temp.File("ignored"), "--resume_from_checkpoint", temp.File("half/checkpoint-3")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(Losses(temp.File("whole")), Losses(temp.File("half")));
        using var a = SafetensorsFile.Open(temp.File("whole/checkpoint-6/adapter_model.safetensors"));
        using var b = SafetensorsFile.Open(temp.File("half/checkpoint-6/adapter_model.safetensors"));
        Assert.Equal(a.Entries.Select(e => e.Name).Order(), b.Entries.Select(e => e.Name).Order());
        Assert.Contains(a.Entries, e => e.Name.EndsWith("lora_magnitude_vector", StringComparison.Ordinal));
        foreach (var e in a.Entries)
        {
            using var x = a.ReadTensor(e.Name);
            using var y = b.ReadTensor(e.Name);
            Assert.True(x.equal(y).all().item<bool>(), $"{e.Name} differs after resuming");
        }
    }

    [Theory]
    [InlineData("--quant_method", "gptq", "--quant_method gptq writes a quantized checkpoint with osprey export")]
    [InlineData("--quant_method", "hqq", "--quant_method 'hqq' is not supported")]
    [InlineData("--quant_bits", "4", "--quant_bits needs --quant_method bnb")]
    [InlineData("--bnb_4bit_quant_type", "int3", "--bnb_4bit_quant_type 'int3' is not supported")]
    public void BadQuantizationFlagsGiveOneClearError(string flag, string value, string message)
    {
        using var temp = new TempDirectory();
        string[] extra = flag == "--bnb_4bit_quant_type" ? ["--quant_method", "bnb", "--quant_bits", "4"] : flag == "--quant_method" ? ["--quant_bits", "4"] : [];
        var run = Sft(["--model", TestDemoModel.Folder, "--dataset", Memorize, "--max_steps", "1", "--output_dir", temp.Path, flag, value, .. extra]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(message, run.Stderr);
        Assert.Single(run.StderrLines, l => l.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void FullTrainingOnAQuantizedBaseIsRefused()
    {
        using var temp = new TempDirectory();
        var run = Sft("--model", TestDemoModel.Folder, "--dataset", Memorize, "--max_steps", "1", "--output_dir", temp.Path, "--train_type", "full", "--quant_method", "bnb", "--quant_bits", "8");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--train_type full cannot train a quantized base", run.Stderr);
    }
}
