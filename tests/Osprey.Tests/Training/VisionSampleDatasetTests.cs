using Osprey.Inference;
using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Models;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// The vision-language samples in examples/datasets (VQA, captioning, OCR, grounding; pictures drawn by
/// tools/make_vl_samples.py) train with the tiny Qwen2-VL fixture, their image tokens never carry loss, --max_pixels
/// changes the image token count by the hand-computed smart_resize grids, and --packing keeps each sample's images
/// and M-RoPE positions (the packed loss equals the sum of the samples' own losses).
/// </summary>
public sealed partial class VisionSampleDatasetTests
{
    static string Model => Path.Combine(TestPaths.Fixtures, "vl", "qwen2_vl");
    static string Sample(string name) => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", name);

    // Every sample picture is 224x168: smart_resize with the fixture's max_pixels 6272 gives 56x84 (transformers'
    // formula by hand: beta = sqrt(37632 / 6272) = sqrt(6); floor(168 / beta / 28) * 28 = 56, floor(224 / beta / 28) * 28
    // = 84), a 4x6 patch grid, 24 / merge_size² = 6 tokens; with --max_pixels 3136, 28x56: 2x4 patches, 2 tokens.
    const int TokensPerImage = 6;
    const int TokensPerImageAt3136 = 2;

    static (int Pad, int Start, int End) VisionIds()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Model, "config.json")));
        var r = doc.RootElement;
        return (r.GetProperty("image_token_id").GetInt32(), r.GetProperty("vision_start_token_id").GetInt32(), r.GetProperty("vision_end_token_id").GetInt32());
    }

    static int ImageCount(string file) =>
        File.ReadLines(file).Where(l => l.Length > 0).Sum(l => JsonDocument.Parse(l).RootElement.GetProperty("images").GetArrayLength());

    [Theory]
    [InlineData("vl_vqa.jsonl")]
    [InlineData("vl_caption.jsonl")]
    [InlineData("vl_ocr.jsonl")]
    [InlineData("vl_grounding.jsonl")]
    public void SampleFile_EncodesWithImageTokensMasked_AndTrainsTwoSteps(string name)
    {
        var file = Sample(name);
        var encoder = new DatasetEncoder(Tokenizer.Load(Model));
        var samples = VisionDatasetEncoding.Encode(encoder, Osprey.Models.VisionInput.Read(Model)!, [file], norm: GroundingObjects.DefaultNormBbox(Model));
        var (pad, start, end) = VisionIds();
        Assert.Equal(File.ReadLines(file).Count(l => l.Length > 0), samples.Count);
        Assert.Equal(ImageCount(file) * TokensPerImage, samples.Sum(s => s.InputIds.Count(i => i == pad)));
        foreach (var s in samples)
        {
            Assert.Contains(s.Labels, l => l != EncodedSample.IgnoreIndex);
            for (var i = 0; i < s.Length; i++)
                if (s.InputIds[i] == pad || s.InputIds[i] == start || s.InputIds[i] == end)
                    Assert.True(s.Labels[i] == EncodedSample.IgnoreIndex, $"{name}: image token {s.InputIds[i]} at {i} carries loss");
        }

        using var temp = new TempDirectory();
        var run = CliRun.Of("sft", "--device", "cpu", "--model", Model, "--dataset", file, "--max_steps", "2", "--per_device_train_batch_size", "2",
            "--logging_steps", "1", "--add_version", "false", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var losses = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.Equal(2, losses.Length);
        Assert.All(losses, l => Assert.True(double.IsFinite(l) && l > 0, $"loss {l}"));
    }

    [GeneratedRegex(@"(\d+) training samples \(([\d,]+) tokens\)")]
    private static partial Regex TrainingTokens();

    static long Tokens(CliRun run)
    {
        var m = TrainingTokens().Match(run.Stdout + run.Stderr);
        Assert.True(m.Success, run.ToString());
        return long.Parse(m.Groups[2].Value.Replace(",", "", StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void MaxPixelsFlag_OnSft_ShrinksEachImageToTheSmartResizeGrid()
    {
        using var temp = new TempDirectory();
        var file = Sample("vl_caption.jsonl");
        string[] common = ["sft", "--device", "cpu", "--model", Model, "--dataset", file, "--max_steps", "1", "--add_version", "false", "--save_strategy", "no"];
        var plain = CliRun.Of([.. common, "--output_dir", temp.File("a")]);
        var small = CliRun.Of([.. common, "--output_dir", temp.File("b"), "--max_pixels", "3136"]);
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.True(small.ExitCode == 0, small.ToString());
        // Text tokens are the same; each image loses 6 - 2 tokens.
        Assert.Equal(ImageCount(file) * (TokensPerImage - TokensPerImageAt3136), Tokens(plain) - Tokens(small));
    }

    [Fact]
    public void PackedImageSamples_LoseWhatEachSampleLosesAlone()
    {
        // Packing must not change what a sample sees: its own images, M-RoPE positions from 0, attention within itself.
        // The reference is each sample's unpacked forward (parity-tested against transformers in VisionLanguageParityTests).
        var encoder = new DatasetEncoder(Tokenizer.Load(Model));
        var samples = VisionDatasetEncoding.Encode(encoder, Osprey.Models.VisionInput.Read(Model)!, [Sample("vl_vqa.jsonl")]);
        var packs = VisionDatasetEncoding.Pack(samples, samples.Sum(s => s.Length));
        var pack = Assert.Single(packs);
        Assert.Equal(samples.Sum(s => s.Images!.Count), pack.Images!.Count);
        using var model = CausalLM.Load(Model, CPU, ScalarType.Float32);
        double alone = 0;
        long aloneTokens = 0;
        foreach (var s in samples)
        {
            using var r = model.ForwardBackward(tensor(s.InputIds.Select(i => (long)i).ToArray(), [1, s.Length]), tensor(s.Labels.Select(i => (long)i).ToArray(), [1, s.Length]), null,
                new TrainForwardOptions { Backward = false, Images = s.Images });
            alone += r.LossSum.item<float>();
            aloneTokens += r.Tokens;
        }
        using var packed = model.ForwardBackward(tensor(pack.InputIds.Select(i => (long)i).ToArray(), [1, pack.Length]), tensor(pack.Labels.Select(i => (long)i).ToArray(), [1, pack.Length]),
            tensor(pack.PositionIds!.Select(i => (long)i).ToArray(), [1, pack.Length]), new TrainForwardOptions { Backward = false, Images = pack.Images });
        Assert.Equal(aloneTokens, packed.Tokens);
        Assert.Equal(alone, packed.LossSum.item<float>(), 1e-3 * Math.Abs(alone));

        // And the sft run with --packing trains.
        using var temp = new TempDirectory();
        var run = CliRun.Of("sft", "--device", "cpu", "--model", Model, "--dataset", Sample("vl_vqa.jsonl"), "--packing", "true", "--max_length", "512",
            "--max_steps", "2", "--add_version", "false", "--save_strategy", "no", "--output_dir", temp.File("p"));
        Assert.True(run.ExitCode == 0, run.ToString());
    }
}
