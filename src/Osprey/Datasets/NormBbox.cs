using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>
/// ms-swift's <c>--norm_bbox</c> (docs/source_en/Instruction/Command-line-parameters.md, template arguments): how the
/// absolute boxes of a grounding row (<c>objects.bbox</c>) are written into the text the model trains on. Unset, the
/// model decides: Qwen2-VL reads boxes on a 0-1000 grid, Qwen2.5-VL in pixels of the image as it was resized for the
/// vision tower (ms-swift's Custom-dataset.md, "Grounding": "qwen2.5-vl uses absolute coordinates, while qwen2-vl ...
/// normalized to the thousandth scale").
/// </summary>
public enum NormBbox
{
    /// <summary>Each coordinate as round(x / image width × 1000) (y by the height), the image's original size.</summary>
    [OptionValue("norm1000")]
    Norm1000,

    /// <summary>Each coordinate in pixels of the resized image: round(x / original width × resized width).</summary>
    None,
}
