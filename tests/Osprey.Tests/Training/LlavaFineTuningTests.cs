using Osprey.Inference;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Io;
using Osprey.Models;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>osprey sft</c> of LLaVA and LLaVA-NeXT on ms-swift's image rows (tests/fixtures/vl/llava_*, tiny random models
/// from transformers 5.17): each image's token count is what transformers' LlavaNextProcessor expands it into
/// (llava_images/images.json) and none carries loss; LoRA lowers the loss and adapts the language model only; full
/// training leaves the frozen vision_tower and multi_modal_projector bit-identical to the checkpoint's tensors and
/// moves what --freeze_vit false / --freeze_aligner false unfreeze.
/// </summary>
public sealed class LlavaFineTuningTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string Image(string name) => Path.Combine(Root, "llava_images", name);
    static bool Present => File.Exists(Image("images.json"));

    static CliRun Sft(params string[] flags) => CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", .. flags]);

    static string Row(string user, string assistant, params string[] images) =>
        JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } }, images });

    [Fact]
    public void EncodedRows_ExpandEachImageAsTransformersProcessor_AndMaskItsTokens()
    {
        if (!Present) return;
        var model = Path.Combine(Root, "llava_next");
        using var temp = new TempDirectory();
        var file = temp.File("rows.jsonl");
        File.WriteAllLines(file, [Row("<image>What is this?", "A wide picture.", Image("wide.png")), Row("Draw.", "Here <image> it is.", Image("strip.png"))]);
        var encoder = new DatasetEncoder(Tokenizer.Load(model));
        var samples = VisionDatasetEncoding.Encode(encoder, VisionInput.Read(model)!, [file]);
        using var meta = JsonDocument.Parse(File.ReadAllText(Image("images.json")));
        int Hf(string f) => meta.RootElement.GetProperty("processors").GetProperty("next").GetProperty("images").EnumerateArray()
            .Single(i => i.GetProperty("file").GetString() == f).GetProperty("tokens").GetProperty("llava_next").GetInt32();
        Assert.Equal(Hf("wide.png"), samples[0].InputIds.Count(i => i == 256));
        Assert.Equal(Hf("strip.png"), samples[1].InputIds.Count(i => i == 256));
        foreach (var s in samples)
        {
            Assert.DoesNotContain(256, s.Labels);
            Assert.Contains(s.Labels, l => l != EncodedSample.IgnoreIndex);
        }
        // The image tokens of the second row sit in one run inside the labelled reply.
        var second = samples[1].InputIds;
        var firstImage = Array.IndexOf(second, 256);
        Assert.All(second.Skip(firstImage).Take(Hf("strip.png")), id => Assert.Equal(256, id));
    }

    [Fact]
    public void Training_LowersTheLoss_AndLeavesFrozenPartsBitIdentical()
    {
        if (!Present) return;
        var model = Path.Combine(Root, "llava_clip");
        using var temp = new TempDirectory();
        var rows = temp.File("rows.jsonl");
        File.WriteAllLines(rows, [Row("<image>What is this?", "A wide picture.", Image("wide.png")), Row("Describe <image> please.", "A tall one.", Image("tall.jpg"))]);
        string[] common = ["--model", model, "--dataset", rows, "--max_steps", "4", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--add_version", "false"];

        var lora = Sft([.. common, "--learning_rate", "1e-2", "--output_dir", temp.File("lora")]);
        Assert.True(lora.ExitCode == 0, lora.ToString());
        var losses = TrainingLog.ReadJsonl(temp.File("lora/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.True(losses[^1] < losses[0], $"loss should fall: {string.Join(", ", losses)}");
        // all-linear with the default flags adapts the language model's linear layers only.
        var adapter = SafetensorsBytes.Read(temp.File("lora/checkpoint-4/adapter_model.safetensors"), _ => true);
        Assert.Contains(adapter.Keys, k => k.Contains(".layers.0.self_attn.q_proj.lora_A", StringComparison.Ordinal));
        Assert.DoesNotContain(adapter.Keys, k => k.Contains("vision_tower", StringComparison.Ordinal) || k.Contains("multi_modal_projector", StringComparison.Ordinal));

        static bool Tower(string n) => n.StartsWith("vision_tower.", StringComparison.Ordinal);
        static bool Aligner(string n) => n.StartsWith("multi_modal_projector.", StringComparison.Ordinal);
        static bool Llm(string n) => n.StartsWith("language_model.", StringComparison.Ordinal);
        var original = SafetensorsBytes.Read(Path.Combine(model, "model.safetensors"), _ => true);
        Assert.Contains(original.Keys, Tower);
        Assert.Contains(original.Keys, Aligner);

        // Default flags: the language model trains, the tower and projector stay as they were, bit for bit.
        var full = Sft([.. common, "--train_type", "full", "--learning_rate", "1e-3", "--output_dir", temp.File("full")]);
        Assert.True(full.ExitCode == 0, full.ToString());
        var afterFull = SafetensorsBytes.Read(temp.File("full/checkpoint-4/model.safetensors"), _ => true);
        Assert.Equal(original.Keys.Order(), afterFull.Keys.Order());
        foreach (var (name, bytes) in original.Where(kv => Tower(kv.Key) || Aligner(kv.Key)))
            Assert.True(bytes.AsSpan().SequenceEqual(afterFull[name]), $"{name} changed with --freeze_vit/--freeze_aligner true");
        Assert.Contains(original, kv => Llm(kv.Key) && !kv.Value.AsSpan().SequenceEqual(afterFull[kv.Key]));

        // --freeze_vit false --freeze_aligner false --freeze_llm true: the tower and projector move, the language model stays.
        var open = Sft([.. common, "--train_type", "full", "--freeze_vit", "false", "--freeze_aligner", "false", "--freeze_llm", "true", "--learning_rate", "1e-3", "--output_dir", temp.File("open")]);
        Assert.True(open.ExitCode == 0, open.ToString());
        var afterOpen = SafetensorsBytes.Read(temp.File("open/checkpoint-4/model.safetensors"), _ => true);
        foreach (var (name, bytes) in original)
        {
            var same = bytes.AsSpan().SequenceEqual(afterOpen[name]);
            if (Llm(name)) Assert.True(same, $"{name} changed with --freeze_llm true");
            else if (Aligner(name) && name.EndsWith(".weight", StringComparison.Ordinal)) Assert.False(same, $"{name} did not change with --freeze_aligner false");
        }
        // The tower's layer used for the features (vision_feature_layer -2 of 3 layers: layers 0 and 1) moves.
        Assert.Contains(original, kv => kv.Key.Contains(".encoder.layers.0.", StringComparison.Ordinal) && !kv.Value.AsSpan().SequenceEqual(afterOpen[kv.Key]));

        // LoRA with --freeze_vit false --freeze_aligner false: all-linear adapts the tower and projector too, and their
        // adapters train (B starts at zero, so a nonzero B got gradients through the image features).
        var towerLora = Sft([.. common, "--freeze_vit", "false", "--freeze_aligner", "false", "--learning_rate", "1e-2", "--output_dir", temp.File("tower")]);
        Assert.True(towerLora.ExitCode == 0, towerLora.ToString());
        var towerAdapter = SafetensorsBytes.Read(temp.File("tower/checkpoint-4/adapter_model.safetensors"), _ => true);
        foreach (var module in new[] { "model.vision_tower.encoder.layers.0.self_attn.q_proj", "model.vision_tower.encoder.layers.0.mlp.fc2", "model.multi_modal_projector.linear_1" })
        {
            var b = towerAdapter[$"base_model.model.{module}.lora_B.weight"];
            Assert.Contains(b, x => x != 0);
        }
    }
}

/// <summary>
/// The frozen-tower feature cache on LLaVA models: features served from the cache are the tower's own, bit for bit
/// (LLaVA-NeXT's anyres tiles, unpadding and image_newline rows included), and a LoRA SFT of several epochs sends each
/// distinct image through the tower once.
/// </summary>
public sealed class LlavaFeatureCacheTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string Image(string name) => Path.Combine(Root, "llava_images", name);
    static bool Present => File.Exists(Image("images.json"));

    [Theory]
    [InlineData("llava_clip")]
    [InlineData("llava_next")]
    public void CachedFeatures_EqualTheTowersOwn(string family)
    {
        if (!Present) return;
        using var model = CausalLM.Load(Path.Combine(Root, family), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        var input = model.ImageInput!;
        var images = new[] { "wide.png", "tall.jpg", "wide.png" }.Select(n => input.Process(Osprey.Images.ImageDecoder.Load(Image(n)))).ToList();
        using var direct = model.ImageFeatures(images);
        var passes = model.VisionTowerImages;
        using var cache = new VisionFeatureCache(1L << 30);
        model.FeatureCache = cache;
        try
        {
            using var first = model.ImageFeatures(images);   // wide.png twice: encoded once
            using var second = model.ImageFeatures(images);  // all from the cache
            Assert.Equal(direct.shape, first.shape);
            Assert.Equal(images.Sum(i => (long)input.TokenCount(i)), direct.shape[0]);
            // The miss batch holds the two distinct images, not all three, so float32 sums may round differently.
            var gap = (direct - first).abs().max().item<float>();
            Assert.True(gap < 1e-5, $"features through the cache differ from the tower's by {gap}");
            Assert.True(first.eq(second).all().item<bool>(), "features from the cache differ from those it stored");
            Assert.Equal(2, model.VisionTowerImages - passes);
            Assert.Equal((4L, 2L), (cache.Hits, cache.Misses));
        }
        finally { model.FeatureCache = null; }
    }

    [Fact]
    public void LoraSft_WithAFrozenTower_EncodesEachImageOnceAcrossEpochs()
    {
        if (!Present) return;
        using var temp = new TempDirectory();
        var rows = temp.File("rows.jsonl");
        static string Row(string user, string assistant, string image) =>
            JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } }, images = new[] { image } });
        File.WriteAllLines(rows, [Row("<image>What is this?", "A wide picture.", Image("wide.png")), Row("Describe <image> please.", "A tall one.", Image("tall.jpg"))]);
        // 3 epochs, both rows in each step: 6 image uses, 2 distinct images.
        var run = CliRun.Of(["sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", Path.Combine(Root, "llava_next"), "--dataset", rows,
            "--num_train_epochs", "3", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--add_version", "false",
            "--output_dir", temp.File("out")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("osprey: vision tower: 2 image passes, 4 images served from the feature cache.", run.Stdout + run.Stderr);
    }

    [Fact]
    public void LoraRewardModel_OnLlavaNextImagePairs_TrainsAndSavesTheScoreHead()
    {
        if (!Present) return;
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        static object[] Chat(string user, string assistant) => [new { role = "user", content = user }, new { role = "assistant", content = assistant }];
        File.WriteAllLines(rows,
        [
            JsonSerializer.Serialize(new { messages = Chat("<image>What is this?", "A wide picture."), rejected_response = "A cat.", images = new[] { Image("wide.png") } }),
            JsonSerializer.Serialize(new { messages = Chat("Describe <image> please.", "A tall one."), rejected_response = "Nothing.", images = new[] { Image("tall.jpg") } }),
        ]);
        // LLaVA-NeXT holds image_newline as a parameter of the model itself, outside any module: saving the score head
        // (modules_to_save) must step over it.
        var run = CliRun.Of(["rlhf", "--rlhf_type", "rm", "--device", "cpu", "--model", Path.Combine(Root, "llava_next"), "--dataset", rows,
            "--max_steps", "4", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--logging_steps", "1", "--add_version", "false",
            "--output_dir", temp.File("out")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var losses = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.True(losses[^1] < losses[0], $"the pairwise loss should fall: {string.Join(", ", losses)}");
        var adapter = SafetensorsBytes.Read(temp.File("out/checkpoint-4/adapter_model.safetensors"), _ => true);
        Assert.Contains("base_model.model.score.weight", adapter.Keys);
        Assert.Contains(adapter.Keys, k => k.Contains(".layers.0.self_attn.q_proj.lora_A", StringComparison.Ordinal));
    }
}
