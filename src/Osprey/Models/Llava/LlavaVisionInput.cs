using System.Text.Json;
using Osprey.Images;

namespace Osprey.Models.Llava;

/// <summary>LLaVA / LLaVA-NeXT images: CLIP-style crops (LLaVA-NeXT: the base crop and the anyres tiles), as many
/// placeholder tokens as feature rows, no tokens around them, and the image as a content part for the chat template
/// (LlavaProcessor's input); tower "vision_tower.", aligner "multi_modal_projector.".</summary>
internal sealed class LlavaVisionInput : VisionInput
{
    readonly LlavaSpec _spec;
    readonly Func<RgbImage, ImageTiles> _process;

    LlavaVisionInput(LlavaSpec spec, Func<RgbImage, ImageTiles> process)
    {
        _spec = spec;
        _process = process;
    }

    public static LlavaVisionInput Read(string directory, JsonDocument config, string file, ImageOptions? sizes)
    {
        if (sizes?.MaxPixels is not null || sizes?.MinPixels is not null)
            throw new OspreyException("--max_pixels/--min_pixels: LLaVA crops every image to the vision tower's fixed size (preprocessor_config.json); drop them.");
        var spec = LlavaFamily.ReadVision(config, file);
        Func<RgbImage, ImageTiles> process = spec.Next
            ? LlavaNextImageProcessor.FromFolder(directory, spec.Pinpoints).Process
            : ClipImageProcessor.FromFolder(directory).Process;
        return new LlavaVisionInput(spec, process);
    }

    public override int ImageTokenId => _spec.ImageTokenId;
    public override int? StartTokenId => null;
    public override int? EndTokenId => null;
    public override bool ImagesAsContentParts => true;
    public override string TowerPrefix => "vision_tower.";
    public override IReadOnlyList<string> AlignerPrefixes { get; } = ["multi_modal_projector.", "image_newline"];

    public override ProcessedImage Process(RgbImage image) => _process(image);

    public override int TokenCount(ProcessedImage image)
    {
        if (image is not ImageTiles t) throw new OspreyException("the images were not processed for this model (not LLaVA crops); use the model folder's preprocessor.");
        LlavaImages.CheckCrops(_spec, t);
        return LlavaImages.TokenCount(_spec, t);
    }
}
