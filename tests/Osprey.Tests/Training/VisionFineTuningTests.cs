using Osprey.Inference;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Io;
using Osprey.Models;
using Osprey.Templates;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Reporting;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// Fine-tuning Qwen2-VL with images on the CPU (tests/fixtures/vl, tiny random models from transformers): image
/// tokens never carry loss and their count is the grid transformers' processor gives (images.json); training lowers
/// the loss; the vision tower and aligner stay bit-identical to the checkpoint's tensors unless unfrozen; and
/// --freeze_vit/--freeze_aligner/--freeze_llm pick the trainable tensors by the hub checkpoint's names.
/// </summary>
public sealed class VisionFineTuningTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string Model => Path.Combine(Root, "qwen2_vl");
    static string Image(string name) => Path.Combine(Root, "images", name);

    static CliRun Sft(params string[] flags) => CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", .. flags]);

    /// <summary>transformers' image_grid_thw for a fixture image (images.json, written by its processor).</summary>
    static int HfTokens(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Image("images.json")));
        var grid = doc.RootElement.GetProperty("images").EnumerateArray().Single(i => i.GetProperty("file").GetString() == file)
            .GetProperty("image_grid_thw").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return grid[0] * grid[1] * grid[2] / 4; // merge_size 2 in the fixture's config
    }

    static (int Image, int Start, int End) VisionIds()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Model, "config.json")));
        var r = doc.RootElement;
        return (r.GetProperty("image_token_id").GetInt32(), r.GetProperty("vision_start_token_id").GetInt32(), r.GetProperty("vision_end_token_id").GetInt32());
    }

    static string Row(string user, string assistant, params string[] images) =>
        JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } }, images });

    static string Rows(TempDirectory temp)
    {
        var file = temp.File("rows.jsonl");
        File.WriteAllLines(file,
        [
            Row("<image>What is this?", "A wide picture.", Image("wide.png")),
            Row("<image>Describe it.", "A tall one.", Image("tall.jpg")),
        ]);
        return file;
    }

    [Fact]
    public void SplitDatasetRatio_HoldsOutImageRowsForValidation()
    {
        using var temp = new TempDirectory();
        var file = temp.File("rows.jsonl");
        File.WriteAllLines(file,
        [
            Row("<image>What is this?", "A wide picture.", Image("wide.png")),
            Row("<image>Describe it.", "A tall one.", Image("tall.jpg")),
            Row("<image>Which colour?", "Grey.", Image("small_gray.png")),
            Row("<image>And this?", "Wide again.", Image("wide.png")),
        ]);
        var run = Sft("--model", Model, "--dataset", file, "--split_dataset_ratio", "0.5", "--max_steps", "2", "--eval_steps", "2",
            "--per_device_train_batch_size", "1", "--logging_steps", "1", "--add_version", "false", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var text = run.Stdout + run.Stderr;
        Assert.Contains($"dataset {file}: 2 rows held out for validation (--split_dataset_ratio 0.5)", text);
        Assert.Contains("osprey: 2 training samples", text);
        Assert.Contains("2 validation samples", text);
        Assert.Contains(TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")), r => r.ContainsKey("eval_loss"));

        // Preference rows split the same way (pairs held out per file).
        var pairs = temp.File("pairs.jsonl");
        File.WriteAllLines(pairs, new[] { ("wide.png", "A wide picture.", "A cat."), ("tall.jpg", "A tall one.", "Nothing."), ("small_gray.png", "Grey.", "Red.") }
            .Select(p => JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = "<image>What is this?" }, new { role = "assistant", content = p.Item2 } },
                rejected_response = p.Item3, images = new[] { Image(p.Item1) } })));
        var dpo = CliRun.Of(["rlhf", "--rlhf_type", "dpo", "--device", "cpu", "--model", Model, "--dataset", pairs, "--split_dataset_ratio", "0.3",
            "--max_steps", "1", "--per_device_train_batch_size", "1", "--add_version", "false", "--output_dir", temp.File("dpo")]);
        Assert.True(dpo.ExitCode == 0, dpo.ToString());
        Assert.Contains($"dataset {pairs}: 1 rows held out for validation (--split_dataset_ratio 0.3)", dpo.Stdout + dpo.Stderr);
        Assert.Contains("osprey: 2 training pairs, 1 validation", dpo.Stdout + dpo.Stderr);
    }

    [Fact]
    public void EncodedRow_LabelsAreIgnoredOnEveryImageTokenAndThePrompt()
    {
        using var temp = new TempDirectory();
        var file = temp.File("rows.jsonl");
        // An image in the prompt, and one inside the reply: neither image's tokens may carry loss.
        File.WriteAllLines(file, [Row("<image>What is this?", "A wide picture.", Image("wide.png")), Row("Draw.", "Here <image> it is.", Image("small_gray.png"))]);
        var tokenizer = Tokenizer.Load(Model);
        var encoder = new DatasetEncoder(tokenizer);
        var samples = VisionDatasetEncoding.Encode(encoder, Osprey.Models.VisionInput.Read(Model)!, [file]);
        var (pad, start, end) = VisionIds();

        var first = samples[0];
        Assert.Equal(HfTokens("wide.png"), first.InputIds.Count(i => i == pad));
        Assert.Single(first.Images!);
        for (var i = 0; i < first.Length; i++)
            if (first.InputIds[i] == pad || first.InputIds[i] == start || first.InputIds[i] == end) Assert.Equal(EncodedSample.IgnoreIndex, first.Labels[i]);
        // The prompt is masked as for text: the labels are the same as those of the row without its image.
        var text = encoder.Encode(new DatasetRow(file, 1, DatasetFormat.Messages, new Conversation(
            [new Dictionary<string, object?> { ["role"] = "user", ["content"] = "What is this?" }, new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = "A wide picture." }]), null))!;
        Assert.Equal(text.Labels.Where(l => l != EncodedSample.IgnoreIndex), first.Labels.Where(l => l != EncodedSample.IgnoreIndex));
        var firstLabelled = Array.FindIndex(first.Labels, l => l != EncodedSample.IgnoreIndex);
        Assert.StartsWith("A wide picture.", tokenizer.Decode(first.Labels.Skip(firstLabelled).Where(l => l != EncodedSample.IgnoreIndex).ToArray()));

        var second = samples[1];
        var imageTokens = HfTokens("small_gray.png");
        Assert.Equal(imageTokens, second.InputIds.Count(i => i == pad));
        // In the reply: every labelled position is a text token, and the image's tokens plus its two markers are masked.
        var replyStart = Array.FindIndex(second.Labels, l => l != EncodedSample.IgnoreIndex);
        var replyEnd = Array.FindLastIndex(second.Labels, l => l != EncodedSample.IgnoreIndex);
        var masked = Enumerable.Range(replyStart, replyEnd - replyStart + 1).Count(i => second.Labels[i] == EncodedSample.IgnoreIndex);
        Assert.Equal(imageTokens + 2, masked);
        Assert.DoesNotContain(second.Labels, l => l == pad || l == start || l == end);
    }

    [Fact]
    public void Training_LowersTheLoss_AndTouchesTheVisionTowerOnlyWhenUnfrozen()
    {
        using var temp = new TempDirectory();
        var rows = Rows(temp);
        string[] common = ["--model", Model, "--dataset", rows, "--max_steps", "4", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--add_version", "false"];

        var lora = Sft([.. common, "--learning_rate", "1e-2", "--output_dir", temp.File("lora")]);
        Assert.True(lora.ExitCode == 0, lora.ToString());
        var losses = TrainingLog.ReadJsonl(temp.File("lora/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.True(losses[^1] < losses[0], $"loss should fall: {string.Join(", ", losses)}");
        // all-linear with the default flags adapts the language model only.
        var adapter = SafetensorsBytes.Read(temp.File("lora/checkpoint-4/adapter_model.safetensors"), _ => true);
        Assert.NotEmpty(adapter);
        Assert.DoesNotContain(adapter.Keys, k => k.Contains("visual.", StringComparison.Ordinal));

        var original = SafetensorsBytes.Read(Path.Combine(Model, "model.safetensors"), n => n.StartsWith("visual.", StringComparison.Ordinal));
        Assert.NotEmpty(original);
        var frozen = Sft([.. common, "--train_type", "full", "--learning_rate", "1e-3", "--output_dir", temp.File("frozen")]);
        Assert.True(frozen.ExitCode == 0, frozen.ToString());
        var afterFrozen = SafetensorsBytes.Read(temp.File("frozen/checkpoint-4/model.safetensors"), n => n.StartsWith("visual.", StringComparison.Ordinal));
        Assert.Equal(original.Keys.Order(), afterFrozen.Keys.Order());
        foreach (var (name, bytes) in original) Assert.True(bytes.AsSpan().SequenceEqual(afterFrozen[name]), $"{name} changed with --freeze_vit true");

        var open = Sft([.. common, "--train_type", "full", "--freeze_vit", "false", "--learning_rate", "1e-3", "--output_dir", temp.File("open")]);
        Assert.True(open.ExitCode == 0, open.ToString());
        var afterOpen = SafetensorsBytes.Read(temp.File("open/checkpoint-4/model.safetensors"), n => n.StartsWith("visual.", StringComparison.Ordinal));
        foreach (var (name, bytes) in original)
        {
            var same = bytes.AsSpan().SequenceEqual(afterOpen[name]);
            // The aligner (merger) stays frozen by default; the tower's weights all move.
            if (name.StartsWith("visual.merger.", StringComparison.Ordinal)) Assert.True(same, $"{name} changed with --freeze_aligner true");
            else if (name.EndsWith(".weight", StringComparison.Ordinal) && name.Contains(".blocks.", StringComparison.Ordinal)) Assert.False(same, $"{name} did not change with --freeze_vit false");
        }
    }

    static List<string> Trainable(params (string Flag, string Value)[] flags)
    {
        var o = new TrainerOptions { TrainType = TrainType.Full };
        foreach (var (flag, value) in flags)
            o = flag switch
            {
                "lora" => o with { TrainType = TrainType.Lora },
                "freeze_vit" => o with { FreezeVit = bool.Parse(value) },
                "freeze_aligner" => o with { FreezeAligner = bool.Parse(value) },
                "freeze_llm" => o with { FreezeLlm = bool.Parse(value) },
                _ => throw new ArgumentException(flag),
            };
        using var model = CausalLM.Load(Model, CPU, ScalarType.Float32);
        return TrainingSession.SetUpTrainable(model, o, TextWriter.Null).Select(p => p.Name).ToList();
    }

    [Fact]
    public void FreezeFlags_PickTheTrainableTensorsByHubName()
    {
        // The reference: the checkpoint's own tensor names and shapes (tied lm_head: none stored).
        Dictionary<string, int> rank;
        using (var f = SafetensorsFile.Open(Path.Combine(Model, "model.safetensors"))) rank = f.Entries.ToDictionary(e => e.Name, e => e.Shape.Length);
        var names = rank.Keys.ToList();
        var merger = names.Where(n => n.StartsWith("visual.merger.", StringComparison.Ordinal)).Order().ToList();
        var tower = names.Where(n => n.StartsWith("visual.", StringComparison.Ordinal) && !merger.Contains(n)).Order().ToList();
        var llm = names.Where(n => !n.StartsWith("visual.", StringComparison.Ordinal)).Order().ToList();
        Assert.NotEmpty(merger);
        Assert.NotEmpty(tower);

        Assert.Equal(llm, Trainable().Order());
        Assert.Equal(llm.Concat(tower).Order(), Trainable(("freeze_vit", "false")).Order());
        Assert.Equal(merger, Trainable(("freeze_aligner", "false"), ("freeze_llm", "true")).Order());
        Assert.Equal(names.Order(), Trainable(("freeze_vit", "false"), ("freeze_aligner", "false")).Order());

        // LoRA with all-linear: adapters on the unfrozen parts' linear layers (2-D weights; not the embedding, not
        // the patch convolution) only.
        static List<string> Modules(List<string> adapters) => adapters.Select(a => a[..a.IndexOf(".lora_", StringComparison.Ordinal)]).Distinct().Order().ToList();
        List<string> Linear(IEnumerable<string> part) => part.Where(n => n.EndsWith(".weight", StringComparison.Ordinal) && rank[n] == 2 && n != "model.embed_tokens.weight")
            .Select(n => n[..^".weight".Length]).Order().ToList();
        Assert.Equal(Linear(llm), Modules(Trainable(("lora", ""))));
        Assert.Equal(Linear(tower), Modules(Trainable(("lora", ""), ("freeze_vit", "false"), ("freeze_llm", "true"))));
        Assert.Equal(Linear(llm.Concat(merger)), Modules(Trainable(("lora", ""), ("freeze_aligner", "false"))));
        var error = Assert.Throws<OspreyException>(() => Trainable(("lora", ""), ("freeze_llm", "true")));
        Assert.Contains("--freeze_llm true", error.Message);
    }

    [Fact]
    public void VitAndAlignerLearningRates_AreMultipliersOfTheBaseRate()
    {
        // Hand-computed: 2e-5 / 1e-4 = 0.2 and 5e-4 / 1e-4 = 5; the language model keeps the base rate.
        var o = new TrainerOptions { LearningRate = 1e-4, VitLr = 2e-5, AlignerLr = 5e-4 };
        Assert.Equal(0.2, VisionFreezing.LrScale(o, Osprey.Models.VisionInput.Read(Model)!, "visual.blocks.0.attn.qkv.weight"), 12);
        Assert.Equal(0.2, VisionFreezing.LrScale(o, Osprey.Models.VisionInput.Read(Model)!, "visual.patch_embed.proj.weight"), 12);
        Assert.Equal(5.0, VisionFreezing.LrScale(o, Osprey.Models.VisionInput.Read(Model)!, "visual.merger.mlp.0.weight"), 12);
        Assert.Equal(1.0, VisionFreezing.LrScale(o, Osprey.Models.VisionInput.Read(Model)!, "model.layers.0.self_attn.q_proj.lora_A.weight"), 12);
        Assert.Equal(1.0, VisionFreezing.LrScale(o with { VitLr = null }, Osprey.Models.VisionInput.Read(Model)!, "visual.blocks.0.attn.qkv.weight"), 12);
        Assert.Throws<OspreyException>(() => (o with { VitLr = 0 }).Validate());
    }

    [Fact]
    public void ImageTagsThatDoNotMatchTheImages_AreAClearError()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("rows.jsonl");
        File.WriteAllLines(rows, [Row("<image>", "ok", Image("wide.png")), Row("<image><image>Compare.", "Same.", Image("wide.png"))]);
        var run = Sft("--model", Model, "--dataset", rows, "--max_steps", "1", "--output_dir", temp.File("out"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"{rows} line 2: the messages have 2 <image> tag(s) but \"images\" lists 1", run.Stderr);
    }
}
