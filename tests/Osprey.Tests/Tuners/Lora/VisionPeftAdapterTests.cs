using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Io;
using Osprey.Models;
using Osprey.Training;
using Osprey.Tuners.Lora;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Osprey.Tests.Tuners.Lora;

/// <summary>
/// LoRA adapters of vision-language models in PEFT's format over transformers 5. The reference for every expected key is
/// transformers 5.17 itself: the <c>state_dict()</c> names of each tiny fixture's live model, which
/// tests/fixtures/vl/*/golden.json records (a module's path is its weight's name without <c>.weight</c>; PEFT's key is
/// <c>base_model.model.</c> + path + <c>.lora_A.weight</c>). Adapters in the layouts written before (Osprey's own names,
/// transformers 4's <c>language_model.model.</c>) still load to the same logits, a text model's keys are unchanged, and
/// <c>osprey infer --images --adapters</c> answers as the merged model does.
/// </summary>
public sealed class VisionPeftAdapterTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");

    static readonly string[] Targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "fc1", "linear_1"];

    /// <summary>transformers 5.17's state_dict names and shapes of the fixture's model.</summary>
    static Dictionary<string, int> StateDict(string family) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, family, "golden.json"))).RootElement.GetProperty("state_dict")
            .EnumerateArray().ToDictionary(e => e[0].GetString()!, e => e[1].GetArrayLength());

    /// <summary>Attaches LoRA on <paramref name="options"/>'s targets with large random A and B (so the adapter matters) and saves it.</summary>
    static LoraOptions SaveAdapter(string family, LoraOptions options, string directory, Func<CausalLM, LoraOptions>? resolve = null)
    {
        using var model = CausalLM.Load(Path.Combine(Root, family), CPU, ScalarType.Float32);
        options = resolve?.Invoke(model) ?? options;
        model.AttachLora(options, seed: 3);
        var g = new Generator(11, CPU);
        using (no_grad())
            foreach (var (_, p) in model.LoraParameters()) p.copy_(randn(p.shape, generator: g) * 0.3);
        PeftAdapter.Save(model, options, directory, Path.Combine(Root, family));
        return options;
    }

    static List<string> Keys(string directory)
    {
        using var f = SafetensorsFile.Open(Path.Combine(directory, PeftAdapter.WeightsFile));
        return f.Entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Every module path of the transformers model: each prefix of a state_dict name.</summary>
    static HashSet<string> Modules(string family) => StateDict(family).Keys.SelectMany(k =>
    {
        var parts = k.Split('.');
        return Enumerable.Range(1, parts.Length - 1).Select(n => string.Join('.', parts.Take(n)));
    }).ToHashSet();

    /// <summary>The modules PEFT puts an adapter on for adapter_config.json's target_modules: a list matches a path or its
    /// dotted end, a string is re.fullmatch'ed (peft's check_target_module_exists).</summary>
    static List<string> PeftSelects(string family, string directory)
    {
        var targets = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, PeftAdapter.ConfigFile)))!["target_modules"]!;
        Func<string, bool> hit = targets is JsonArray list
            ? m => list.Select(n => n!.GetValue<string>()).Any(t => m == t || m.EndsWith("." + t, StringComparison.Ordinal))
            : m => Regex.IsMatch(m, $"^(?:{targets.GetValue<string>()})$");
        return Modules(family).Where(hit).Order(StringComparer.Ordinal).ToList();
    }

    static List<string> KeysOf(IEnumerable<string> modules) =>
        modules.SelectMany(m => new[] { $"base_model.model.{m}.lora_A.weight", $"base_model.model.{m}.lora_B.weight" }).Order(StringComparer.Ordinal).ToList();

    [Theory]
    [InlineData("qwen2_vl")]
    [InlineData("qwen2_5_vl")]
    [InlineData("llava_clip")]
    [InlineData("llava_siglip")]
    [InlineData("llava_next")]
    public void Save_WritesTransformers5ModulePaths(string family)
    {
        using var temp = new TempDirectory();
        SaveAdapter(family, new LoraOptions { TargetModules = [.. Targets] }, temp.Path);
        var qwen = family.StartsWith("qwen", StringComparison.Ordinal);
        // Every 2-D weight of a targeted module, the vision tower's and the aligner's included: a short name adapts the
        // layer wherever it is, as in PEFT (Qwen2-VL's qkv and fc1, a LLaVA tower's q_proj/k_proj/v_proj/fc1, its
        // projector's linear_1). Not SigLIP's pooling head (model.vision_tower.head.mlp.fc1): LLaVA never runs it.
        var expected = StateDict(family)
            .Where(kv => kv.Value == 2 && kv.Key.EndsWith(".weight", StringComparison.Ordinal))
            .Select(kv => kv.Key[..^".weight".Length])
            .Where(m => Targets.Contains(m.Split('.')[^1]) && !m.StartsWith("model.vision_tower.head.", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        var siglipHead = StateDict(family).Keys.Any(k => k.StartsWith("model.vision_tower.head.mlp.fc1", StringComparison.Ordinal));
        Assert.Equal(family == "llava_siglip", siglipHead);
        Assert.Contains(expected, k => k.StartsWith("model.language_model.layers.", StringComparison.Ordinal));
        Assert.Contains(expected, k => k.StartsWith(qwen ? "model.visual.blocks." : "model.vision_tower.encoder.layers.", StringComparison.Ordinal));
        if (!qwen) Assert.Contains("model.multi_modal_projector.linear_1", expected);
        Assert.Equal(KeysOf(expected), Keys(temp.Path));
        // PEFT builds exactly the adapters the file holds: target_modules stay the short names where they select just
        // those layers, else name them (a SigLIP tower, whose unused pooling head also has an fc1).
        Assert.Equal(expected, PeftSelects(family, temp.Path));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.Path, PeftAdapter.ConfigFile)))!;
        if (siglipHead) Assert.IsAssignableFrom<JsonValue>(config["target_modules"]);
        else Assert.Equal(Targets, config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
    }

    [Theory]
    [InlineData("qwen2_vl")]
    [InlineData("llava_next")]
    public void AllLinear_OfTheLanguageModel_IsARegexSelectingExactlyItsLayersAmongTransformersModules(string family)
    {
        using var temp = new TempDirectory();
        var options = SaveAdapter(family, new LoraOptions { TargetModules = ["all-linear"] }, temp.Path,
            m => VisionFreezing.LoraFor(m, new TrainerOptions { TrainType = TrainType.Lora }));
        Assert.NotNull(options.TargetRegex);
        var expected = StateDict(family).Where(kv => kv.Value == 2 && kv.Key.StartsWith("model.language_model.layers.", StringComparison.Ordinal))
            .Select(kv => kv.Key[..^".weight".Length]).Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(expected);
        Assert.Equal(expected, PeftSelects(family, temp.Path));
        Assert.Equal(KeysOf(expected), Keys(temp.Path));

        // Osprey reads it back: the adapter merges (its regex names these layers) and changes the model.
        using var model = CausalLM.Load(Path.Combine(Root, family), CPU, ScalarType.Float32);
        Assert.Equal(expected.Count, PeftAdapter.MergeInto(model, temp.Path));
    }

    [Theory]
    [InlineData("llava_clip")]
    [InlineData("llava_siglip")]
    [InlineData("llava_next")]
    public void AllLinear_WithTowerAndAlignerUnfrozen_AdaptsEveryLinearLayerTransformersRunsForLlava(string family)
    {
        using var temp = new TempDirectory();
        var options = SaveAdapter(family, new LoraOptions { TargetModules = ["all-linear"] }, temp.Path,
            m => VisionFreezing.LoraFor(m, new TrainerOptions { TrainType = TrainType.Lora, FreezeVit = false, FreezeAligner = false }));
        Assert.NotNull(options.TargetRegex);
        // transformers' linear layers: the 2-D weights that are no embedding table and no output head (PEFT's all-linear
        // leaves lm_head out too), without SigLIP's pooling head, which LLaVA never runs.
        var expected = StateDict(family).Where(kv => kv.Value == 2 && kv.Key.EndsWith(".weight", StringComparison.Ordinal))
            .Select(kv => kv.Key[..^".weight".Length])
            .Where(m => m != "lm_head" && !m.EndsWith("embed_tokens", StringComparison.Ordinal) && !m.EndsWith("position_embedding", StringComparison.Ordinal)
                && !m.StartsWith("model.vision_tower.head.", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        Assert.Contains(expected, m => m.StartsWith("model.vision_tower.encoder.layers.", StringComparison.Ordinal) && m.EndsWith(".self_attn.out_proj", StringComparison.Ordinal));
        Assert.Contains("model.multi_modal_projector.linear_2", expected);
        Assert.Equal(KeysOf(expected), Keys(temp.Path));
        Assert.Equal(expected, PeftSelects(family, temp.Path));

        // The adapter merges back into the tower and projector and changes the model's logits there.
        using var model = CausalLM.Load(Path.Combine(Root, family), CPU, ScalarType.Float32);
        Assert.Equal(expected.Count, PeftAdapter.MergeInto(model, temp.Path));
    }

    /// <summary>Rewrites an adapter's keys with <paramref name="rename"/> (prefixes of the path after base_model.model.).</summary>
    static void Relayout(string from, string to, params (string From, string To)[] rename)
    {
        Directory.CreateDirectory(to);
        File.Copy(Path.Combine(from, PeftAdapter.ConfigFile), Path.Combine(to, PeftAdapter.ConfigFile));
        using var f = SafetensorsFile.Open(Path.Combine(from, PeftAdapter.WeightsFile));
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var e in f.Entries)
        {
            var path = e.Name["base_model.model.".Length..];
            var r = rename.First(r => path.StartsWith(r.From, StringComparison.Ordinal));
            tensors.Add(new("base_model.model." + r.To + path[r.From.Length..], f.ReadTensor(e.Name)));
        }
        SafetensorsWriter.Write(Path.Combine(to, PeftAdapter.WeightsFile), tensors);
        foreach (var t in tensors) t.Value.Dispose();
    }

    static Tensor Logits(string family, string? adapter, bool attach)
    {
        using var model = CausalLM.Load(Path.Combine(Root, family), CPU, ScalarType.Float32);
        if (adapter is not null)
        {
            if (attach)
            {
                model.AttachLora(PeftAdapter.ReadConfig(adapter).Options);
                PeftAdapter.LoadInto(model, adapter);
            }
            else PeftAdapter.MergeInto(model, adapter);
        }
        model.eval(); // no adapter dropout
        using var ids = tensor(new long[] { 1, 5, 9, 14, 3, 7, 2, 11 }).reshape(1, -1);
        using var _ = no_grad();
        return model.Forward(ids).detach().clone();
    }

    [Theory]
    [InlineData("qwen2_vl")]
    [InlineData("llava_clip")]
    public void OlderLayouts_LoadToIdenticalLogits(string family)
    {
        using var temp = new TempDirectory();
        var adapter = temp.File("new");
        SaveAdapter(family, new LoraOptions { TargetModules = [.. Targets] }, adapter);
        // The layouts from the checkpoint side of transformers' _checkpoint_conversion_mapping (see PeftModulePaths):
        // Qwen2-VL before transformers 4.52 (and Osprey before) kept "model.layers." and "visual."; LLaVA in
        // transformers 4 kept "language_model.model." / "vision_tower.vision_model.", Osprey before "model." for the
        // language model and "vision_tower.vision_model." for the tower.
        var layouts = family.StartsWith("qwen", StringComparison.Ordinal)
            ? new[] { new[] { ("model.language_model.", "model."), ("model.visual.", "visual."), ("", "") } }
            : new[]
            {
                new[] { ("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower.vision_model."), ("model.multi_modal_projector.", "multi_modal_projector."), ("", "") },
                new[] { ("model.language_model.", "model."), ("model.vision_tower.", "vision_tower.vision_model."), ("model.multi_modal_projector.", "multi_modal_projector."), ("", "") },
            };
        using var baseline = Logits(family, null, false);
        using var attached = Logits(family, adapter, attach: true);
        using var merged = Logits(family, adapter, attach: false);
        Assert.True((attached - baseline).abs().max().item<float>() > 1e-2, "the adapter must change the logits");
        Assert.True((attached - merged).abs().max().item<float>() < 1e-4, $"attached and merged adapters must agree: {(attached - merged).abs().max().item<float>()} vs {(attached - baseline).abs().max().item<float>()}");
        for (var i = 0; i < layouts.Length; i++)
        {
            var old = temp.File($"old{i}");
            Relayout(adapter, old, layouts[i]);
            Assert.DoesNotContain(Keys(old), k => k.Contains("language_model.layers", StringComparison.Ordinal));
            using var a = Logits(family, old, attach: true);
            using var m = Logits(family, old, attach: false);
            Assert.True((a - attached).abs().max().item<float>() == 0f, $"layout {i}: attached logits differ");
            Assert.True((m - merged).abs().max().item<float>() == 0f, $"layout {i}: merged logits differ");
        }
    }

    [Fact]
    public void TextModel_KeysAreUnchanged()
    {
        var dir = Path.Combine(TestPaths.Fixtures, "parity", "qwen2");
        using var temp = new TempDirectory();
        using (var model = CausalLM.Load(dir, CPU, ScalarType.Float32))
        {
            model.AttachLora(new LoraOptions { TargetModules = ["q_proj", "down_proj"] });
            PeftAdapter.Save(model, new LoraOptions { TargetModules = ["q_proj", "down_proj"] }, temp.Path, dir);
        }
        // transformers' Qwen2ForCausalLM saves its weights under their module paths: "model.layers.0.self_attn.q_proj.weight".
        using var f = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        var expected = f.Entries.Select(e => e.Name).Where(n => n.EndsWith(".q_proj.weight", StringComparison.Ordinal) || n.EndsWith(".down_proj.weight", StringComparison.Ordinal))
            .SelectMany(n => new[] { $"base_model.model.{n[..^".weight".Length]}.lora_A.weight", $"base_model.model.{n[..^".weight".Length]}.lora_B.weight" })
            .Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(expected);
        Assert.All(expected, k => Assert.StartsWith("base_model.model.model.layers.", k, StringComparison.Ordinal));
        Assert.Equal(expected, Keys(temp.Path));
    }

    static string InferReply(string folder, string row, IReadOnlyList<string> adapters)
    {
        var stdout = new StringWriter();
        var options = new InferOptions
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = folder,
            ValDatasets = [row],
            MaxNewTokens = 8,
            Adapters = [.. adapters],
        };
        Assert.Equal(0, Infer.Run(options, () => throw new InvalidOperationException("not a text model"), new StringReader(""), stdout, new StringWriter()));
        return JsonNode.Parse(stdout.ToString().Trim())!["response"]!.GetValue<string>();
    }

    [Theory]
    [InlineData("qwen2_vl", "wide.png")]
    [InlineData("llava_clip", "wide.png")]
    public void InferWithImages_AppliesTheAdapter_AsTheMergedModelAnswers(string family, string image)
    {
        using var temp = new TempDirectory();
        var dir = Path.Combine(Root, family);
        var adapter = temp.File("adapter");
        SaveAdapter(family, new LoraOptions { TargetModules = ["q_proj", "v_proj", "down_proj"] }, adapter);
        var imageDir = family.StartsWith("qwen", StringComparison.Ordinal) ? "images" : "llava_images";
        var row = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "<image>What is this?" }),
            ["images"] = new JsonArray(JsonValue.Create(Path.Combine(Root, imageDir, image))),
        };
        File.WriteAllText(temp.File("rows.jsonl"), row.ToJsonString() + "\n");

        // The merged model, written by the library path osprey export --merge_lora takes (CausalLM), beside the fixture's other files.
        var merged = temp.File("merged");
        Directory.CreateDirectory(merged);
        foreach (var file in Directory.GetFiles(dir).Where(f => Path.GetFileName(f) is not ("model.safetensors" or "golden.safetensors" or "golden.json")))
            File.Copy(file, Path.Combine(merged, Path.GetFileName(file)));
        if (Directory.Exists(Path.Combine(dir, "image_processor")))
        {
            Directory.CreateDirectory(Path.Combine(merged, "image_processor"));
            foreach (var file in Directory.GetFiles(Path.Combine(dir, "image_processor")))
                File.Copy(file, Path.Combine(merged, "image_processor", Path.GetFileName(file)));
        }
        using (var model = CausalLM.Load(dir, CPU, ScalarType.Float32))
        {
            PeftAdapter.MergeInto(model, adapter);
            model.Save(merged, long.MaxValue);
        }

        var baseReply = InferReply(dir, temp.File("rows.jsonl"), []);
        var adapted = InferReply(dir, temp.File("rows.jsonl"), [adapter]);
        Assert.NotEqual(baseReply, adapted);
        Assert.Equal(InferReply(merged, temp.File("rows.jsonl"), []), adapted);
    }

    /// <summary>
    /// Not a check by itself: with OSPREY_VL_PEFT_OUT set, writes what tools/check_vl_peft.py compares with transformers 5
    /// + PEFT on the GPU machine: per family an Osprey-saved adapter (adapter/) and osprey.safetensors with Osprey's float32
    /// logits, adapter merged, for the fixture's text_only and one_image prompts (transformers' own input_ids from
    /// golden.safetensors) and the pixel values Osprey fed the tower, so both sides see the same image tensors.
    /// tests/fixtures/vl_peft/ holds its output (OSPREY_VL_PEFT_OUT=$PWD/tests/fixtures/vl_peft dotnet test --filter ...).
    /// </summary>
    [Fact]
    public void WritesTheArtifactsOfCheckVlPeft()
    {
        var outRoot = Environment.GetEnvironmentVariable("OSPREY_VL_PEFT_OUT");
        if (string.IsNullOrEmpty(outRoot)) return;
        foreach (var family in new[] { "qwen2_vl", "qwen2_5_vl", "llava_clip", "llava_siglip", "llava_next" })
        {
            var dir = Path.Combine(Root, family);
            var outDir = Path.Combine(outRoot, family);
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
            var adapter = Path.Combine(outDir, "adapter");
            SaveAdapter(family, new LoraOptions { TargetModules = [.. Targets], Dropout = 0 }, adapter);
            using var golden = SafetensorsFile.Open(Path.Combine(dir, "golden.safetensors"));
            var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement.GetProperty("cases");
            var image = cases.EnumerateArray().First(c => c.GetProperty("name").GetString() == "one_image").GetProperty("images")[0].GetString()!;
            var qwen = family.StartsWith("qwen", StringComparison.Ordinal);
            var decoded = Osprey.Images.ImageDecoder.Load(Path.Combine(Root, qwen ? "images" : "llava_images", image));
            var tensors = new List<KeyValuePair<string, Tensor>>();
            using var _ = no_grad();
            foreach (var adapted in new[] { false, true })
            {
                var tag = adapted ? "" : "base_";
                if (qwen)
                {
                    using var model = Osprey.Models.Qwen2Vl.Qwen2VlModel.Load(dir, CPU, ScalarType.Float32);
                    if (adapted) PeftAdapter.MergeInto(model, adapter);
                    var img = Osprey.Images.Qwen2VlImageProcessor.FromFolder(dir).Process(decoded);
                    tensors.Add(new(tag + "text.logits", model.Forward(golden.ReadTensor("text_only.input_ids"), []).detach().clone()));
                    tensors.Add(new(tag + "image.logits", model.Forward(golden.ReadTensor("one_image.input_ids"), [img]).detach().clone()));
                    if (adapted)
                    {
                        tensors.Add(new("image.pixel_values", tensor(img.PixelValues).reshape(img.Rows, img.PatchDim)));
                        tensors.Add(new("image.image_grid_thw", tensor(new long[] { img.GridT, img.GridH, img.GridW }).reshape(1, 3)));
                    }
                }
                else
                {
                    using var model = Osprey.Models.Llava.LlavaModel.Load(dir, CPU, ScalarType.Float32);
                    if (adapted) PeftAdapter.MergeInto(model, adapter);
                    var img = Osprey.Models.Llava.LlavaModel.ImageProcessor(dir)(decoded);
                    tensors.Add(new(tag + "text.logits", model.Forward(golden.ReadTensor("text_only.input_ids"), []).detach().clone()));
                    tensors.Add(new(tag + "image.logits", model.Forward(golden.ReadTensor("one_image.input_ids"), [img]).detach().clone()));
                    if (adapted)
                    {
                        var pixels = tensor(img.PixelValues).reshape(img.Tiles, 3, img.Height, img.Width);
                        tensors.Add(new("image.pixel_values", model.IsNext ? pixels.unsqueeze(0) : pixels));
                        if (model.IsNext) tensors.Add(new("image.image_sizes", tensor(new long[] { img.OriginalHeight, img.OriginalWidth }).reshape(1, 2)));
                    }
                }
            }
            tensors.Add(new("text.input_ids", golden.ReadTensor("text_only.input_ids")));
            tensors.Add(new("image.input_ids", golden.ReadTensor("one_image.input_ids")));
            SafetensorsWriter.Write(Path.Combine(outDir, "osprey.safetensors"), tensors);
            foreach (var t in tensors) t.Value.Dispose();
        }
    }
}
