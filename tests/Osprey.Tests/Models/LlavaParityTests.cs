using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub;
using Osprey.Images;
using Osprey.Inference;
using Osprey.Io;
using Osprey.Models.Llava;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// LLaVA (CLIP and SigLIP towers) and LLaVA-NeXT against transformers 5.17 (tests/fixtures/vl/llava_*, written by
/// tools/make_llava_fixtures.py on tiny seeded random models in float32): the image processors' pixel_values, the
/// processor's prompt expansion (input_ids), the packed image features, the logits (≤ 1e-4) and greedy generations
/// (identical ids), the hub checkpoints' weight names, and <c>osprey infer --images</c>. The fixtures come from the GPU
/// machine; until they are committed these tests have nothing to compare and return at once (xunit 2 has no
/// run-time skip). Once they are there every assertion applies.
/// </summary>
public sealed class LlavaParityTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string ImagesDir => Path.Combine(Root, "llava_images");
    static bool Present => File.Exists(Path.Combine(ImagesDir, "images.json"));

    public static TheoryData<string> Families() => new() { "llava_clip", "llava_siglip", "llava_next" };

    static readonly Dictionary<string, string> ProcessorOf = new() { ["clip"] = "llava_clip", ["siglip"] = "llava_siglip", ["next"] = "llava_next" };

    static Tensor Read(string file, string name)
    {
        using var f = SafetensorsFile.Open(file);
        return f.ReadTensor(name);
    }

    static double MaxDiff(Tensor a, Tensor b) => (a.to_type(ScalarType.Float32) - b.to_type(ScalarType.Float32)).abs().max().item<float>();

    /// <summary>The worst difference in 0..255 levels (normalised values times std).</summary>
    static double WorstLevels(float[] theirs, float[] ours, int plane, IReadOnlyList<double> std)
    {
        Assert.Equal(theirs.Length, ours.Length);
        var worst = 0.0;
        for (var j = 0; j < theirs.Length; j++)
            worst = Math.Max(worst, Math.Abs(theirs[j] - ours[j]) * std[j / plane % 3]);
        return worst * 255;
    }

    [Fact]
    public void ImageProcessors_MatchTransformers()
    {
        if (!Present) return;
        var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(ImagesDir, "images.json"))).RootElement;
        var pixels = Path.Combine(ImagesDir, "pixels.safetensors");
        foreach (var (key, family) in ProcessorOf)
        {
            var dir = Path.Combine(Root, family);
            var process = LlavaModel.ImageProcessor(dir);
            // The image processor saved alone (preprocessor_config.json, as hub checkpoints ship it) reads the same.
            var alone = key == "next"
                ? (Func<RgbImage, ImageTiles>)LlavaNextImageProcessor.FromFolder(Path.Combine(dir, "image_processor"), []).Process
                : ClipImageProcessor.FromFolder(Path.Combine(dir, "image_processor")).Process;
            var std = ClipImageProcessor.FromFolder(Path.Combine(dir, "image_processor")).ImageStd;
            foreach (var m in meta.GetProperty("processors").GetProperty(key).GetProperty("images").EnumerateArray())
            {
                var name = m.GetProperty("file").GetString()!;
                var image = ImageDecoder.Load(Path.Combine(ImagesDir, name));
                var ours = process(image);
                using var theirs = Read(pixels, $"{key}/{name}.pixel_values");
                // [1, 3, H, W] for one crop; LLaVA-NeXT's [1, crops, 3, H, W].
                var shape = theirs.shape;
                Assert.Equal(key == "next" ? shape[1] : 1, ours.Tiles);
                Assert.Equal((shape[^2], shape[^1]), ((long)ours.Height, (long)ours.Width));
                var worst = WorstLevels(theirs.data<float>().ToArray(), ours.PixelValues, ours.Height * ours.Width, std);
                Assert.True(worst <= 1.0 + 1e-3, $"{key}/{name}: pixel_values differ by {worst:F3}/255");
                Assert.Equal(ours.PixelValues, alone(image).PixelValues);
                if (key == "next")
                {
                    using var sizes = Read(pixels, $"{key}/{name}.image_sizes");
                    Assert.Equal(new long[] { ours.OriginalHeight, ours.OriginalWidth }, sizes.data<long>().ToArray());
                }
            }
        }
    }

    [Fact]
    public void ProcessorConfigAlone_ReadsTheSameSettings()
    {
        if (!Present) return;
        foreach (var family in ProcessorOf.Values)
        {
            var dir = Path.Combine(Root, family);
            var proc = Path.Combine(dir, "processor_config.json");
            // transformers 5 may write the image processor's settings inside processor_config.json only.
            if (!File.Exists(proc) || !JsonDocument.Parse(File.ReadAllText(proc)).RootElement.TryGetProperty("image_processor", out _)) continue;
            using var tmp = new TempDirectory();
            File.Copy(proc, tmp.File("processor_config.json"));
            var a = ClipImageProcessor.FromFolder(tmp.Path);
            var b = ClipImageProcessor.FromFolder(Path.Combine(dir, "image_processor"));
            Assert.Equal(b with { ImageMean = [], ImageStd = [], GridPinpoints = [] }, a with { ImageMean = [], ImageStd = [], GridPinpoints = [] });
            Assert.Equal(b.ImageMean, a.ImageMean);
            Assert.Equal(b.ImageStd, a.ImageStd);
            Assert.Equal(b.GridPinpoints, a.GridPinpoints);
        }
    }

    static IReadOnlyList<int> Expanded(string dir, LlavaModel model, string text, IReadOnlyList<ImageTiles> images)
    {
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(dir, ""), dir, null);
        var rendered = chat.Render(LlavaInference.Messages([("user", text)]));
        return chat.EncodeRendered(LlavaInference.Expand(rendered, "<image>", images.Select(model.TokenCount).ToList()));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void PromptFeaturesLogitsAndGreedy_MatchTransformers(string family)
    {
        if (!Present) return;
        var dir = Path.Combine(Root, family);
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        var goldenFile = Path.Combine(dir, "golden.safetensors");
        using var model = LlavaModel.Load(dir, CPU, ScalarType.Float32);
        var process = LlavaModel.ImageProcessor(dir);
        using var _ = no_grad();
        foreach (var c in golden.GetProperty("cases").EnumerateArray())
        {
            var name = c.GetProperty("name").GetString()!;
            var images = c.GetProperty("images").EnumerateArray()
                .Select(f => process(ImageDecoder.Load(Path.Combine(ImagesDir, f.GetString()!)))).ToList();
            var ids = c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            // The processor's expansion of the prompt: one image token per feature row of each image.
            Assert.Equal(ids, Expanded(dir, model, c.GetProperty("text").GetString()!, images));
            using var idt = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], dtype: ScalarType.Int64);
            if (images.Count > 0)
            {
                using var feats = model.ImageFeatures(images);
                using var theirFeats = Read(goldenFile, name + ".image_embeds");
                Assert.Equal(theirFeats.shape, feats.shape);
                Assert.True(MaxDiff(feats, theirFeats) <= 1e-4, $"{family}/{name}: image features differ by {MaxDiff(feats, theirFeats)}");
            }
            using var logits = model.Forward(idt, images);
            using var theirLogits = Read(goldenFile, name + ".logits");
            var d = MaxDiff(logits, theirLogits);
            Assert.True(d <= 1e-4, $"{family}/{name}: logits differ by {d}");
            var greedy = model.GenerateGreedy(ids, images, golden.GetProperty("max_new_tokens").GetInt32());
            Assert.Equal(c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), greedy);
        }
    }

    [Theory]
    [InlineData("llava_clip", "hub")]
    [InlineData("llava_next", "hub")]
    [InlineData("llava_siglip", "nested")]
    [InlineData("llava_next", "nested")]
    public void OtherWeightLayouts_LoadTheSameModel(string family, string layout)
    {
        if (!Present) return;
        var dir = Path.Combine(Root, family);
        using var tmp = new TempDirectory();
        foreach (var f in Directory.GetFiles(dir).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
            File.Copy(f, tmp.File(Path.GetFileName(f)));
        // transformers 5.17 saves vision_tower.embeddings.*, language_model.model.*, language_model.lm_head.*. The hub
        // checkpoints (llava-hf/llava-1.5-7b-hf, llava-hf/llava-v1.6-mistral-7b-hf) nest the tower as
        // vision_tower.vision_model.*; transformers 5's module tree (its state_dict, golden.json) nests all under "model.".
        string Rename(string n) => layout == "hub"
            ? (n.StartsWith("vision_tower.", StringComparison.Ordinal) ? "vision_tower.vision_model." + n["vision_tower.".Length..] : n)
            : n.StartsWith("language_model.model.", StringComparison.Ordinal) ? "model.language_model." + n["language_model.model.".Length..]
            : n.StartsWith("language_model.lm_head.", StringComparison.Ordinal) ? n["language_model.".Length..]
            : "model." + n;
        using (var src = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        {
            var names = src.Entries.Select(e => e.Name).ToList();
            Assert.Contains(names, n => n.StartsWith("vision_tower.embeddings.", StringComparison.Ordinal));
            var tensors = names.Select(n => new KeyValuePair<string, Tensor>(Rename(n), src.ReadTensor(n))).ToList();
            if (layout == "nested")
            {
                var want = GoldenOf(dir).GetProperty("state_dict").EnumerateArray().Select(e => e[0].GetString()!).ToHashSet();
                Assert.All(tensors, t => Assert.Contains(t.Key, want));
            }
            SafetensorsWriter.Write(tmp.File("model.safetensors"), tensors);
            foreach (var t in tensors) t.Value.Dispose();
        }
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        var c = golden.GetProperty("cases").EnumerateArray().First(x => x.GetProperty("images").GetArrayLength() > 0);
        var process = LlavaModel.ImageProcessor(dir);
        var images = c.GetProperty("images").EnumerateArray().Select(f => process(ImageDecoder.Load(Path.Combine(ImagesDir, f.GetString()!)))).ToList();
        var ids = c.GetProperty("input_ids").EnumerateArray().Select(e => (long)e.GetInt32()).ToArray();
        using var model = LlavaModel.Load(tmp.Path, CPU, ScalarType.Float32);
        using var _ = no_grad();
        using var idt = tensor(ids, [1, ids.Length], dtype: ScalarType.Int64);
        using var logits = model.Forward(idt, images);
        using var theirLogits = Read(Path.Combine(dir, "golden.safetensors"), c.GetProperty("name").GetString()! + ".logits");
        Assert.True(MaxDiff(logits, theirLogits) <= 1e-4);
    }

    static JsonElement GoldenOf(string dir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;

    [Theory]
    [InlineData("llava_siglip")]
    [InlineData("llava_next")]
    public void InferWithImages_AnswersWithTransformersGreedyIds(string family)
    {
        if (!Present) return;
        var dir = Path.Combine(Root, family);
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        // "<image><image>Which one is larger?": osprey infer --images puts the images' tags before the first question.
        var c = golden.GetProperty("cases").EnumerateArray().First(x => x.GetProperty("name").GetString() == "alpha_square");
        var text = c.GetProperty("text").GetString()!;
        Assert.StartsWith("<image><image>", text);
        var files = c.GetProperty("images").EnumerateArray().Select(f => Path.Combine(ImagesDir, f.GetString()!)).ToArray();
        var stdout = new StringWriter();
        var options = new InferOptions
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = dir,
            Images = files,
            MaxNewTokens = golden.GetProperty("max_new_tokens").GetInt32(),
        };
        var stdin = new StringReader(text["<image><image>".Length..] + "\n");
        Assert.Equal(0, Infer.Run(options, () => throw new InvalidOperationException("not a text model"), stdin, stdout, new StringWriter()));
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(dir, ""), dir, null);
        var ids = c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(chat.DecodeReply(ids, chat.StopIds([2])) + Environment.NewLine, stdout.ToString());
    }

    [Fact]
    public void InferDatasetRow_AnswersWithTransformersGreedyIds()
    {
        if (!Present) return;
        var dir = Path.Combine(Root, "llava_clip");
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        var c = golden.GetProperty("cases").EnumerateArray().First(x => x.GetProperty("name").GetString() == "two_images");
        using var tmp = new TempDirectory();
        var row = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = c.GetProperty("text").GetString() }),
            ["images"] = new JsonArray(c.GetProperty("images").EnumerateArray().Select(f => (JsonNode)JsonValue.Create(Path.Combine(ImagesDir, f.GetString()!))!).ToArray()),
        };
        File.WriteAllText(tmp.File("rows.jsonl"), row.ToJsonString() + "\n");
        var stdout = new StringWriter();
        var options = new InferOptions
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = dir,
            ValDatasets = [tmp.File("rows.jsonl")],
            MaxNewTokens = golden.GetProperty("max_new_tokens").GetInt32(),
        };
        Assert.Equal(0, Infer.Run(options, () => throw new InvalidOperationException("not a text model"), new StringReader(""), stdout, new StringWriter()));
        var response = JsonNode.Parse(stdout.ToString().Trim())!["response"]!.GetValue<string>();
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(dir, ""), dir, null);
        var ids = c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(chat.DecodeReply(ids, chat.StopIds([2])), response);
    }
}
