using Osprey.Inference;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Tokenization;
using Osprey.Training;

namespace Osprey.Tests.Datasets;

/// <summary>
/// ms-swift's grounding rows (docs/source_en/Customization/Custom-dataset.md, "Grounding": <c>objects.ref</c>/<c>bbox</c>
/// filling <c>&lt;ref-object&gt;</c>/<c>&lt;bbox&gt;</c>) written as Qwen-VL grounding text. Expected coordinates are
/// computed by hand with ms-swift's formula (Template.normalize_bbox: int(round(x / width * target)), Python's round)
/// on examples/datasets/images/shapes_1.png, 224x168 pixels, whose red circle is drawn in the box [30, 40, 110, 120]
/// (tools/make_vl_samples.py).
/// </summary>
public sealed class GroundingRowTests
{
    static string Vl(string name) => Path.Combine(TestPaths.Fixtures, "vl", name);
    static string Examples => Path.Combine(TestPaths.RepoRoot, "examples", "datasets");

    static MultimodalRow Parse(string json, string where = "rows.jsonl line 3")
    {
        using var doc = JsonDocument.Parse(json);
        return MultimodalRow.Parse(doc.RootElement, where);
    }

    const string Row1 = """{"messages": [{"role": "user", "content": "<image>Find the <ref-object> in the image."}, {"role": "assistant", "content": "<bbox>"}], "images": ["a.png"], "objects": {"ref": ["red circle"], "bbox": [[30, 40, 110, 120]]}}""";

    static readonly (int, int)[] Original = [(224, 168)];
    // smart_resize(168, 224) with the fixtures' min_pixels 1568, max_pixels 6272, factor 28 (transformers' formula, by
    // hand: 168*224 = 37632 > 6272, beta = sqrt(6), h = floor(168/2.449/28)*28 = 56, w = floor(224/2.449/28)*28 = 84).
    static readonly (int, int)[] Resized = [(84, 56)];

    [Fact]
    public void Norm1000_ScalesTheOriginalImageToAThousand()
    {
        var row = Parse(Row1);
        // /usr/bin/python3: [round(v) for v in (30/224*1000, 40/168*1000, 110/224*1000, 120/168*1000)] == [134, 238, 491, 714]
        var grounded = row.Grounded(Original, Resized, NormBbox.Norm1000, "x");
        Assert.Equal("<image>Find the <|object_ref_start|>red circle<|object_ref_end|> in the image.", grounded.Messages[0].Text);
        Assert.Equal("<|box_start|>(134,238),(491,714)<|box_end|>", grounded.Messages[1].Text);
    }

    [Fact]
    public void None_WritesPixelsOfTheResizedImage()
    {
        // [round(v) for v in (30/224*84, 40/168*56, 110/224*84, 120/168*56)] == [11, 13, 41, 40] (11.25, 13.33, 41.25, 40.0)
        var grounded = Parse(Row1).Grounded(Original, Resized, NormBbox.None, "x");
        Assert.Equal("<|box_start|>(11,13),(41,40)<|box_end|>", grounded.Messages[1].Text);
    }

    [Fact]
    public void Norm1Boxes_PointsAndSeveralBoxesPerName()
    {
        // bbox_type norm1: fractions of the image; a point [x, y]; ref and bbox lists counted separately (ms-swift's
        // "sheep" example: one name, two boxes).
        var row = Parse("""{"messages": [{"role": "user", "content": "<image>Find every <ref-object>."}, {"role": "assistant", "content": "<bbox><bbox> click <bbox>"}], "images": ["a.png"], "objects": {"ref": ["square"], "bbox": [[0.25, 0.5, 0.75, 1], [0.1, 0.2, 0.3, 0.4], [0.5, 0.125]], "bbox_type": "norm1"}}""");
        var grounded = row.Grounded(Original, Resized, NormBbox.Norm1000, "x");
        // 0.25*1000 = 250, 0.5*1000 = 500, ...; 0.125*1000 = 125.
        Assert.Equal("<|box_start|>(250,500),(750,1000)<|box_end|><|box_start|>(100,200),(300,400)<|box_end|> click <|box_start|>(500,125)<|box_end|>", grounded.Messages[1].Text);
        var pixels = row.Grounded(Original, Resized, NormBbox.None, "x");
        // Resized 84x56: 0.25*84 = 21, 0.5*56 = 28, 0.75*84 = 63, 56; 0.1*84 = 8.4 -> 8, 0.2*56 = 11.2 -> 11, 0.3*84 = 25.2 -> 25, 0.4*56 = 22.4 -> 22; 0.5*84 = 42, 0.125*56 = 7.
        Assert.Equal("<|box_start|>(21,28),(63,56)<|box_end|><|box_start|>(8,11),(25,22)<|box_end|> click <|box_start|>(42,7)<|box_end|>", pixels.Messages[1].Text);
    }

    [Fact]
    public void ImageId_PicksTheImageABoxIsMeasuredOn()
    {
        var row = Parse("""{"messages": [{"role": "user", "content": "<image><image>Where?"}, {"role": "assistant", "content": "<bbox> <bbox>"}], "images": ["a.png", "b.png"], "objects": {"ref": [], "bbox": [[50, 50, 100, 100], [50, 50, 100, 100]], "image_id": [1]}}""");
        // Box 0 on image 1 (200x100): 50/200*1000 = 250, 50/100*1000 = 500, 500, 1000. Box 1 defaults to image 0 (100x200): 500, 250, 1000, 500.
        var grounded = row.Grounded([(100, 200), (200, 100)], [(112, 224), (224, 112)], NormBbox.Norm1000, "x");
        Assert.Equal("<|box_start|>(250,500),(500,1000)<|box_end|> <|box_start|>(500,250),(1000,500)<|box_end|>", grounded.Messages[1].Text);
    }

    [Theory]
    [InlineData("""{"ref": ["a", "b"], "bbox": [[1, 2, 3, 4]]}""", "rows.jsonl line 3: the messages have 1 <ref-object> tag(s) but \"objects.ref\" lists 2")]
    [InlineData("""{"ref": ["a"], "bbox": []}""", "rows.jsonl line 3: the messages have 1 <bbox> tag(s) but \"objects.bbox\" lists 0")]
    [InlineData("""{"ref": ["a"], "bbox": [[1, 2, 3]]}""", "rows.jsonl line 3: \"objects.bbox[0]\" must be [x1, y1, x2, y2]")]
    [InlineData("""{"ref": ["a"], "bbox": [[30, 40, 10, 120]]}""", "rows.jsonl line 3: \"objects.bbox[0]\" = [30, 40, 10, 120] has its second corner above or left of its first")]
    [InlineData("""{"ref": ["a"], "bbox": [[-1, 40, 10, 120]]}""", "\"objects.bbox[0]\" = [-1, 40, 10, 120] has a negative coordinate")]
    [InlineData("""{"ref": ["a"], "bbox": [[1, 2, 3, 4]], "image_id": [1]}""", "rows.jsonl line 3: \"objects.image_id[0]\" = 1 is not an image of this row")]
    [InlineData("""{"ref": ["a"], "bbox": [[1, 2, 3, 4]], "bbox_type": "norm1000"}""", "rows.jsonl line 3: \"objects.bbox_type\" must be \"real\"")]
    [InlineData("""["a"]""", "rows.jsonl line 3: \"objects\" must be an object")]
    public void BadObjects_AreOneSentenceNamingRowAndField(string objects, string expected)
    {
        var json = """{"messages": [{"role": "user", "content": "<image>Find the <ref-object>."}, {"role": "assistant", "content": "<bbox>"}], "images": ["a.png"], "objects": OBJ}""".Replace("OBJ", objects, StringComparison.Ordinal);
        var e = Assert.Throws<OspreyException>(() => Parse(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void BoxOutsideTheImage_IsAnErrorNamingTheImageSize()
    {
        var row = Parse(Row1.Replace("[30, 40, 110, 120]", "[30, 40, 230, 120]", StringComparison.Ordinal));
        var e = Assert.Throws<OspreyException>(() => row.Grounded(Original, Resized, NormBbox.Norm1000, "rows.jsonl line 3"));
        Assert.Equal("rows.jsonl line 3: \"objects.bbox[0]\" = [30, 40, 230, 120] lies outside image 0, which is 224x168 pixels; fix the box, or set \"bbox_type\": \"norm1\" if it is in fractions 0-1.", e.Message);
        var norm1 = Parse(Row1.Replace("[[30, 40, 110, 120]]", "[[0.1, 0.2, 1.5, 0.9]], \"bbox_type\": \"norm1\"", StringComparison.Ordinal));
        Assert.Contains("lies outside image 0 (\"bbox_type\": \"norm1\" coordinates run from 0 to 1)", Assert.Throws<OspreyException>(() => norm1.Grounded(Original, Resized, NormBbox.None, "x")).Message);
    }

    [Fact]
    public void DefaultNormBbox_IsNorm1000ForQwen2VlAndPixelsForQwen25Vl()
    {
        // ms-swift: Qwen2_5VLTemplate norm_bbox = 'none', the base Template 'norm1000' (Custom-dataset.md, Grounding).
        Assert.Equal(NormBbox.Norm1000, GroundingObjects.DefaultNormBbox(Vl("qwen2_vl")));
        Assert.Equal(NormBbox.None, GroundingObjects.DefaultNormBbox(Vl("qwen2_5_vl")));
    }

    [Fact]
    public void EncodedGroundingRow_IsTheRowWithTheGroundingTextWrittenOut()
    {
        // The reference is the same conversation with the Qwen2.5-VL grounding text typed by hand (pixels of the
        // resized 84x56 image, computed above); both go through the same encoder, so ids and labels must be equal.
        using var temp = new TempDirectory();
        var image = Path.GetFullPath(Path.Combine(Examples, "images", "shapes_1.png"));
        var grounding = temp.File("grounding.jsonl");
        File.WriteAllText(grounding, Row1.Replace("a.png", image.Replace("\\", "/", StringComparison.Ordinal), StringComparison.Ordinal) + "\n");
        var literal = temp.File("literal.jsonl");
        File.WriteAllText(literal, JsonSerializer.Serialize(new
        {
            messages = new[]
            {
                new { role = "user", content = "<image>Find the <|object_ref_start|>red circle<|object_ref_end|> in the image." },
                new { role = "assistant", content = "<|box_start|>(11,13),(41,40)<|box_end|>" },
            },
            images = new[] { image },
        }) + "\n");
        var model = Vl("qwen2_5_vl");
        var encoder = new DatasetEncoder(Tokenizer.Load(model));
        var processor = Osprey.Models.VisionInput.Read(model)!;
        var a = VisionDatasetEncoding.Encode(encoder, processor, [grounding], norm: GroundingObjects.DefaultNormBbox(model)).Single();
        var b = VisionDatasetEncoding.Encode(encoder, processor, [literal]).Single();
        Assert.Equal(b.InputIds, a.InputIds);
        Assert.Equal(b.Labels, a.Labels);
        Assert.Contains(a.Labels, l => l != EncodedSample.IgnoreIndex);
    }

    [Fact]
    public void InferOnAGroundingRow_AnswersAsForTheRowWithTheTextTypedOut()
    {
        // Qwen2-VL (norm1000 by default): [30, 40, 110, 120] on 224x168 is (134,238),(491,714), worked out above.
        using var temp = new TempDirectory();
        var image = Path.GetFullPath(Path.Combine(Examples, "images", "shapes_1.png"));
        var grounding = temp.File("grounding.jsonl");
        File.WriteAllText(grounding, JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = "<image>What is in <bbox>? Name the <ref-object>." } },
            images = new[] { image },
            objects = new { @ref = new[] { "shape" }, bbox = new[] { new[] { 30, 40, 110, 120 } } },
        }) + "\n");
        var literal = temp.File("literal.jsonl");
        File.WriteAllText(literal, JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = "<image>What is in <|box_start|>(134,238),(491,714)<|box_end|>? Name the <|object_ref_start|>shape<|object_ref_end|>." } },
            images = new[] { image },
        }) + "\n");
        string Reply(string file)
        {
            var run = Osprey.Tests.Cli.Commands.CliRun.Of("infer", "--device", "cpu", "--model", Vl("qwen2_vl"), "--val_dataset", file, "--max_new_tokens", "6", "--result_path", file + ".out");
            Assert.True(run.ExitCode == 0, run.ToString());
            using var doc = JsonDocument.Parse(File.ReadAllLines(file + ".out").Single());
            return doc.RootElement.GetProperty("response").GetString()!;
        }
        var expected = Reply(literal);
        Assert.Equal(expected, Reply(grounding));
        // The comparison can fail: the tiny model answers another box differently (greedy, deterministic).
        var other = temp.File("other.jsonl");
        File.WriteAllText(other, File.ReadAllText(literal).Replace("(134,238),(491,714)", "(500,500),(900,900)", StringComparison.Ordinal));
        Assert.NotEqual(expected, Reply(other));
    }
}
