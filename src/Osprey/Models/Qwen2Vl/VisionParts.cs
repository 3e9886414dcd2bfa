namespace Osprey.Models.Qwen2Vl;

/// <summary>What a Qwen2-VL / Qwen2.5-VL config.json adds to its language model: the vision tower's shape and the
/// special-token ids that mark an image in the prompt.</summary>
internal sealed record VisionParts(VisionSpec Spec, int ImageTokenId, int VisionStartTokenId, int VisionEndTokenId)
{
    /// <summary>The vision part of <paramref name="directory"/>'s config.json, or null for a text-only model.</summary>
    public static VisionParts? Read(string directory, DecoderSpec text)
    {
        if (text.ModelType is not ("qwen2_vl" or "qwen2_5_vl")) return null;
        var file = Path.Combine(directory, "config.json");
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(file));
        var (vision, image, start, end) = Qwen2VlFamily.ReadVision(doc, text, file);
        return new VisionParts(vision, image, start, end);
    }
}
