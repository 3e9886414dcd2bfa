using System.Text.Json;
using Osprey.Images;

namespace Osprey.Models.Qwen2Vl;

/// <summary>Qwen2-VL / Qwen2.5-VL images: smart-resized merge-ordered patches, one token per merge window, framed by
/// &lt;|vision_start|&gt; and &lt;|vision_end|&gt; in the message text; tower "visual.", aligner "visual.merger.".</summary>
internal sealed class QwenVisionInput : VisionInput
{
    readonly Qwen2VlImageProcessor _processor;
    readonly VisionSpec _spec;

    QwenVisionInput(Qwen2VlImageProcessor processor, VisionSpec spec, int image, int start, int end)
    {
        _processor = processor;
        _spec = spec;
        (ImageTokenId, StartTokenId, EndTokenId) = (image, start, end);
    }

    public static QwenVisionInput Read(string directory, JsonDocument config, string file, ImageOptions? sizes)
    {
        var text = new Qwen2VlFamily().ReadSpec(config, file);
        var (vision, image, start, end) = Qwen2VlFamily.ReadVision(config, text, file);
        return new QwenVisionInput(Qwen2VlImageProcessor.FromFolder(directory, sizes), vision, image, start, end);
    }

    public override int ImageTokenId { get; }
    public override int? StartTokenId { get; }
    public override int? EndTokenId { get; }
    public override bool ImagesAsContentParts => false;
    public override string TowerPrefix => "visual.";
    public override IReadOnlyList<string> AlignerPrefixes { get; } = ["visual.merger."];

    public override ProcessedImage Process(RgbImage image) => _processor.Process(image);

    public override (int Width, int Height)? ResizedSize(ProcessedImage image) =>
        image is ImagePatches p ? (p.GridW * _processor.PatchSize, p.GridH * _processor.PatchSize) : null;

    public override int TokenCount(ProcessedImage image)
    {
        var m = _spec.MergeSize;
        if (image is not ImagePatches p || p.PatchDim != _spec.PatchDim || p.GridH % m != 0 || p.GridW % m != 0)
            throw new OspreyException("the images were not processed for this model (patch size or merge size differ); use the model folder's preprocessor.");
        return p.TokenCount(m);
    }
}
