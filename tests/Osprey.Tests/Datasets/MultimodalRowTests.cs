using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Inference;

namespace Osprey.Tests.Datasets;

/// <summary>ms-swift's multimodal rows and OpenAI content parts, and the Qwen2-VL placeholder expansion.</summary>
public sealed class MultimodalRowTests
{
    static MultimodalRow Parse(string json) => MultimodalRow.Parse(JsonDocument.Parse(json).RootElement, "rows.jsonl line 7");

    [Fact]
    public void SwiftRow_TagsMatchImages()
    {
        var r = Parse("""{"messages": [{"role": "user", "content": "<image><image>Compare them."}, {"role": "assistant", "content": "Same."}], "images": ["a.png", {"path": "b.jpg"}]}""");
        Assert.Equal(["a.png", "b.jpg"], r.Images);
        Assert.Equal(("user", "<image><image>Compare them."), r.Messages[0]);
    }

    [Fact]
    public void TagCountMismatch_IsAClearError()
    {
        var ex = Assert.Throws<OspreyException>(() => Parse("""{"messages": [{"role": "user", "content": "<image>What?"}], "images": ["a.png", "b.png"]}"""));
        Assert.Equal("rows.jsonl line 7: the messages have 1 <image> tag(s) but \"images\" lists 2; put one <image> where each image belongs.", ex.Message);
    }

    [Fact]
    public void OpenAiParts_BecomeTagsInPlace()
    {
        var r = Parse("""{"messages": [{"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "text", "text": " ok?"}]}]}""");
        Assert.Equal("Look: <image> ok?", r.Messages[0].Text);
        Assert.Equal(["data:image/png;base64,AAAA"], r.Images);
    }

    [Fact]
    public void RemoteAndMissingImages_AreRefusedWithTheFix()
    {
        var remote = Assert.Throws<OspreyException>(() => ImageSource.Read("https://example.com/cat.png", null, "rows.jsonl line 2"));
        Assert.Contains("does not download images", remote.Message);
        var missing = Assert.Throws<OspreyException>(() => ImageSource.Read("nope/cat.png", "/tmp", "rows.jsonl line 2"));
        Assert.Contains("/tmp/nope/cat.png", missing.Message);
    }

    [Fact]
    public void Expand_RepeatsEachPadByItsImageTokens()
    {
        // 4x6 patches -> 6 tokens, 2x2 patches -> 1 token (merge 2).
        var images = new[] { new ImagePatches(new float[24 * 1176], 1, 4, 6, 1176), new ImagePatches(new float[4 * 1176], 1, 2, 2, 1176) };
        var rendered = "u " + VisionPrompt.ImageBlock + " and " + VisionPrompt.ImageBlock + " ?";
        var expanded = VisionPrompt.Expand(rendered, images, 2);
        Assert.Equal("u <|vision_start|>" + string.Concat(Enumerable.Repeat("<|image_pad|>", 6)) + "<|vision_end|> and <|vision_start|><|image_pad|><|vision_end|> ?", expanded);
        Assert.Throws<OspreyException>(() => VisionPrompt.Expand(rendered, images.Take(1).ToList(), 2));
    }
}
