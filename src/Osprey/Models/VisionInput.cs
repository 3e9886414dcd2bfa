using System.Text.Json;
using Osprey.Images;

namespace Osprey.Models;

/// <summary>
/// What a vision-language model folder (Qwen2-VL, Qwen2.5-VL, LLaVA, LLaVA-NeXT) says about images, read from its
/// config.json and image processor files before any weight loads: how an image is preprocessed, how many placeholder
/// tokens it takes in a prompt, which text tokens surround them, how a chat template receives it, and which parameter
/// names are the vision tower and the aligner. Everything family-specific that the prompt builders, the serving
/// engine and the trainer need lives behind this one type, so they never ask which family a model is.
/// </summary>
public abstract class VisionInput
{
    /// <summary>The placeholder token each image token of a prompt stands in for (config.json's image token id).</summary>
    public abstract int ImageTokenId { get; }

    /// <summary>The token before each image's placeholders (Qwen2-VL's &lt;|vision_start|&gt;); null when none.</summary>
    public abstract int? StartTokenId { get; }

    /// <summary>The token after each image's placeholders (Qwen2-VL's &lt;|vision_end|&gt;); null when none.</summary>
    public abstract int? EndTokenId { get; }

    /// <summary>
    /// Whether a chat template receives an image as a content part (<c>{"type": "image"}</c>, as LLaVA's processors and
    /// templates expect) rather than as the start, placeholder and end tokens written into the message text (ms-swift's
    /// rendering of an <c>&lt;image&gt;</c> tag for Qwen2-VL).
    /// </summary>
    public abstract bool ImagesAsContentParts { get; }

    /// <summary>The prefix of the vision tower's parameter names (<c>--freeze_vit</c>).</summary>
    public abstract string TowerPrefix { get; }

    /// <summary>The prefixes of the aligner's parameter names (<c>--freeze_aligner</c>); one may lie inside the tower's.</summary>
    public abstract IReadOnlyList<string> AlignerPrefixes { get; }

    /// <summary>The image as the model's image processor leaves it.</summary>
    public abstract ProcessedImage Process(RgbImage image);

    /// <summary>
    /// The placeholder tokens <paramref name="image"/> takes in a prompt; throws an <see cref="OspreyException"/> when it
    /// was not processed for this model (another family's processor, another patch or crop size).
    /// </summary>
    public abstract int TokenCount(ProcessedImage image);

    /// <summary>
    /// The pixel size the image was resized to before patching, where the model's box coordinates refer to it
    /// (Qwen2.5-VL grounding); null for a family whose prompts have no boxes.
    /// </summary>
    public virtual (int Width, int Height)? ResizedSize(ProcessedImage image) => null;

    /// <summary>
    /// The image side of <paramref name="directory"/>'s model, with <paramref name="sizes"/> (<c>--max_pixels</c>,
    /// <c>--min_pixels</c>) over its image processor; null for a text model.
    /// </summary>
    public static VisionInput? Read(string directory, ImageOptions? sizes = null)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return null;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(file)); }
        catch (JsonException) { return null; }
        using (doc)
        {
            if (Qwen2Vl.Qwen2VlFamily.Is(doc)) return Qwen2Vl.QwenVisionInput.Read(directory, doc, file, sizes);
            if (Llava.LlavaFamily.Is(doc)) return Llava.LlavaVisionInput.Read(directory, doc, file, sizes);
            return null;
        }
    }

    /// <summary>Whether <paramref name="directory"/> holds a vision-language model Osprey reads.</summary>
    public static bool IsVisionLanguage(string directory)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            return Qwen2Vl.Qwen2VlFamily.Is(doc) || Llava.LlavaFamily.Is(doc);
        }
        catch (JsonException) { return false; }
    }
}
