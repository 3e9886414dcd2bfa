using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub;
using Osprey.Images;
using Osprey.Inference;
using Osprey.Io;
using Osprey.Models.Qwen2Vl;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

/// <summary>
/// Sampling in <c>osprey infer</c> with images (Qwen2-VL and LLaVA fixtures of tests/fixtures/vl, written by
/// transformers 5.17): the first sampled token follows the distribution that temperature and top-p leave of
/// transformers' own logits for the image prompt (computed here from golden.safetensors); top-k 1 gives transformers'
/// greedy reply; a seed gives the same reply every time, and other seeds other replies.
/// </summary>
public sealed class ImageSamplingTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static bool Present => File.Exists(Path.Combine(Root, "images", "images.json")) && File.Exists(Path.Combine(Root, "llava_images", "images.json"));

    static JsonElement Golden(string dir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;

    static JsonElement Case(string dir, string name) => Golden(dir).GetProperty("cases").EnumerateArray().First(x => x.GetProperty("name").GetString() == name);

    /// <summary>One ms-swift row of the case (its {img} marks as &lt;image&gt; tags), written to rows.jsonl as many times as asked.</summary>
    static string Rows(TempDirectory tmp, string imagesDir, JsonElement c, int copies = 1)
    {
        var text = c.GetProperty("text").GetString()!.Replace("{img}", "<image>");
        var row = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }),
            ["images"] = new JsonArray(c.GetProperty("images").EnumerateArray().Select(f => (JsonNode)JsonValue.Create(Path.Combine(imagesDir, f.GetString()!))!).ToArray()),
        };
        File.WriteAllText(tmp.File("rows.jsonl"), string.Concat(Enumerable.Repeat(row.ToJsonString() + "\n", copies)));
        return tmp.File("rows.jsonl");
    }

    static List<string> Replies(InferOptions options)
    {
        var stdout = new StringWriter();
        Assert.Equal(0, Infer.Run(options, () => throw new InvalidOperationException("not a text model"), new StringReader(""), stdout, new StringWriter()));
        return stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!["response"]!.GetValue<string>()).ToList();
    }

    [Theory]
    [InlineData("qwen2_vl", "images", "two_images")]
    [InlineData("llava_clip", "llava_images", "two_images")]
    public void SampledWithTopK1_GivesTransformersGreedyReply(string family, string images, string name)
    {
        if (!Present) return;
        var dir = Path.Combine(Root, family);
        var c = Case(dir, name);
        using var tmp = new TempDirectory();
        var options = new InferOptions
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = dir,
            ValDatasets = [Rows(tmp, Path.Combine(Root, images), c)],
            MaxNewTokens = Golden(dir).GetProperty("max_new_tokens").GetInt32(),
            DoSample = true,
            Temperature = 1.3,
            TopK = 1,
        };
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(dir, ""), dir, null);
        var ids = c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal([chat.DecodeReply(ids, chat.StopIds([2]))], Replies(options));
    }

    [Theory]
    [InlineData("qwen2_vl", "images", "two_images")]
    [InlineData("llava_clip", "llava_images", "two_images")]
    public void SampledReplies_RepeatWithTheSeed_AndDifferAcrossSeeds(string family, string images, string name)
    {
        if (!Present) return;
        var dir = Path.Combine(Root, family);
        using var tmp = new TempDirectory();
        var rows = Rows(tmp, Path.Combine(Root, images), Case(dir, name), copies: 2);
        InferOptions With(long seed) => new()
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = dir,
            ValDatasets = [rows],
            MaxNewTokens = 6,
            Temperature = 1.5,  // a positive temperature alone turns sampling on, as for text
            TopK = 0,
            Seed = seed,
        };
        var first = Replies(With(11));
        Assert.Equal(2, first.Count);
        Assert.Equal(first[0], first[1]);          // each reply starts the seed's stream afresh
        Assert.Equal(first, Replies(With(11)));
        var others = new[] { 12L, 13, 14, 15 }.Select(s => Replies(With(s))[0]).Append(first[0]).Distinct().Count();
        Assert.True(others >= 3, $"5 seeds gave {others} different replies");
    }

    [Fact]
    public void FirstSampledToken_FollowsTemperatureAndTopPOfTransformersLogits()
    {
        if (!Present) return;
        var dir = Path.Combine(Root, "qwen2_vl");
        var c = Case(dir, "one_image");
        var promptIds = c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        const double temperature = 0.8;
        // transformers' next-token logits after the image prompt, and the distribution the published rules leave:
        // softmax(logits / T), then top-p keeps the most likely tokens until the mass before the next one reaches p.
        float[] theirs;
        using (var f = SafetensorsFile.Open(Path.Combine(dir, "golden.safetensors")))
        using (var all = f.ReadTensor("one_image.logits"))
            theirs = all[0, all.shape[1] - 1].to_type(ScalarType.Float32).data<float>().ToArray();
        var scaled = theirs.Select(x => x / temperature).ToArray();
        var max = scaled.Max();
        var exp = scaled.Select(x => Math.Exp(x - max)).ToArray();
        var probs = exp.Select(e => e / exp.Sum()).ToArray();
        var order = Enumerable.Range(0, probs.Length).OrderByDescending(i => probs[i]).ToArray();
        // p halfway between two cumulative masses past 0.6, so float rounding cannot move the cut.
        int k = 0;
        double cum = 0;
        while (cum + probs[order[k]] < 0.6) cum += probs[order[k++]];
        cum += probs[order[k++]];
        var topP = cum + probs[order[k]] / 2;
        var kept = order.Take(k + 1).ToArray();
        Assert.True(kept.Length >= 3, $"the nucleus has {kept.Length} tokens; the check needs several");
        var keptMass = kept.Sum(i => probs[i]);

        var processor = Qwen2VlImageProcessor.FromFolder(dir);
        var images = c.GetProperty("images").EnumerateArray().Select(n => processor.Process(ImageDecoder.Load(Path.Combine(Root, "images", n.GetString()!)))).ToList();
        using var model = Qwen2VlModel.Load(dir, CPU, ScalarType.Float32);
        const int draws = 4000;
        var counts = new Dictionary<int, int>();
        var options = new SamplingParams { DoSample = true, Temperature = temperature, TopK = 0, TopP = topP };
        // The model's own logits after prefilling the image prompt reach the sampler through Generate's pick; each draw
        // is a fresh reply sampler with its own seed.
        model.Generate(promptIds, images, 1, null, logits =>
        {
            for (var s = 0; s < draws; s++)
            {
                using var sampler = ImageReplySampler.For(options with { Seed = s }, promptIds, model.Spec.VocabSize, model.Device)!;
                var id = sampler.Pick(logits);
                counts[id] = counts.GetValueOrDefault(id) + 1;
            }
            return 0;
        });
        Assert.All(counts.Keys, id => Assert.Contains(id, kept));
        foreach (var id in kept)
        {
            var q = probs[id] / keptMass;
            var f = counts.GetValueOrDefault(id) / (double)draws;
            Assert.True(Math.Abs(f - q) < 5 * Math.Sqrt(q * (1 - q) / draws) + 1e-3, $"token {id}: transformers' probability {q:F4}, sampled {f:F4}");
        }
    }
}
