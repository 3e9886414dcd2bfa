using Osprey.Datasets;
using Osprey.Images;

namespace Osprey.Inference;

/// <summary>
/// A Qwen2-VL prompt with images: each <c>&lt;image&gt;</c> tag becomes <c>&lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt;</c>
/// (ms-swift's replacement for this family), the conversation is rendered with the chat template, and the k-th
/// <c>&lt;|image_pad|&gt;</c> is repeated once per token of the k-th image (its patches over merge_size²), as
/// Qwen2VLProcessor does.
/// </summary>
public static class VisionPrompt
{
    /// <summary>The placeholder token of one image token.</summary>
    public const string ImagePad = "<|image_pad|>";
    /// <summary>What an image tag stands for before expansion.</summary>
    public const string ImageBlock = "<|vision_start|>" + ImagePad + "<|vision_end|>";

    /// <summary>The template messages for <paramref name="messages"/>, tags replaced.</summary>
    public static IReadOnlyList<object?> Messages(IEnumerable<(string Role, string Text)> messages) =>
        messages.Select(m => (object?)InferenceDataset.Message(m.Role, m.Text.Replace(MultimodalRow.ImageTag, ImageBlock, StringComparison.Ordinal))).ToList();

    /// <summary>Repeats the k-th <see cref="ImagePad"/> of <paramref name="rendered"/> as often as image k has tokens.</summary>
    public static string Expand(string rendered, IReadOnlyList<ImagePatches> images, int mergeSize)
    {
        var parts = rendered.Split(ImagePad);
        if (parts.Length - 1 != images.Count)
            throw new OspreyException($"the rendered prompt has {parts.Length - 1} image placeholder(s) for {images.Count} image(s); the chat template must keep the message text as it is.");
        var sb = new System.Text.StringBuilder(parts[0]);
        for (var k = 0; k < images.Count; k++)
        {
            for (var i = 0; i < images[k].TokenCount(mergeSize); i++) sb.Append(ImagePad);
            sb.Append(parts[k + 1]);
        }
        return sb.ToString();
    }
}
