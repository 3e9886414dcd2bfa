using Osprey.Datasets;
using Osprey.Images;
using Osprey.Inference;
using Osprey.Options;
using Osprey.Serving;
using Osprey.Training;

namespace Osprey.Tests.Images;

/// <summary>
/// --max_pixels/--min_pixels and MAX_PIXELS/MIN_PIXELS (ms-swift's names): which limit wins, and the grid each gives.
/// Expected grids are transformers' smart_resize (Qwen2VLImageProcessor, image_processing_qwen2_vl.py) computed by
/// hand with /usr/bin/python3 for examples/datasets/images/shapes_1.png (224x168), factor 28, the fixture's
/// min_pixels 1568 and max_pixels 6272 unless a limit overrides:
/// smart_resize(168, 224) = (56, 84); max 3136: (28, 56); max 20000: (112, 140); min 50000, max 100000: (196, 280).
/// </summary>
public sealed class PixelLimitTests
{
    static string Model => Path.Combine(TestPaths.Fixtures, "vl", "qwen2_vl");
    static RgbImage Shapes => ImageDecoder.Decode(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "images", "shapes_1.png")), "shapes_1.png");

    static (int H, int W) Grid(ImageOptions options)
    {
        var p = Qwen2VlImageProcessor.FromFolder(Model, options).Process(Shapes);
        return (p.GridH, p.GridW);
    }

    [Fact]
    public void Flags_GiveSmartResizeGrids()
    {
        // Grids are the resized sides over patch_size 14.
        Assert.Equal((4, 6), Grid(new ImageOptions()));
        Assert.Equal((2, 4), Grid(new ImageOptions { MaxPixels = 3136 }));
        Assert.Equal((8, 10), Grid(new ImageOptions { MaxPixels = 20000 }));
        Assert.Equal((14, 20), Grid(new ImageOptions { MinPixels = 50000, MaxPixels = 100000 }));
    }

    static Func<string, string?> Env(params (string Name, string Value)[] vars) => name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void MaxPixels_TheSmallerOfFlagAndEnvironmentWins_AsBothCapsApplyInMsSwift()
    {
        Assert.Equal((null, null), ImageOptions.Limits(new ImageOptions(), Env()));
        Assert.Equal((20000L, null), ImageOptions.Limits(new ImageOptions(), Env(("MAX_PIXELS", "20000"))));
        Assert.Equal((20000L, null), ImageOptions.Limits(new ImageOptions { MaxPixels = 20000 }, Env()));
        Assert.Equal((3136L, null), ImageOptions.Limits(new ImageOptions { MaxPixels = 20000 }, Env(("MAX_PIXELS", "3136"))));
        Assert.Equal((3136L, null), ImageOptions.Limits(new ImageOptions { MaxPixels = 3136 }, Env(("MAX_PIXELS", "20000"))));
        // MIN_PIXELS applies unless --min_pixels (an Osprey flag; ms-swift has only the variable) is given.
        Assert.Equal((null, 4000L), ImageOptions.Limits(new ImageOptions(), Env(("MIN_PIXELS", "4000"))));
        Assert.Equal((null, 5000L), ImageOptions.Limits(new ImageOptions { MinPixels = 5000 }, Env(("MIN_PIXELS", "4000"))));
    }

    [Fact]
    public void BadLimits_AreOneSentenceErrors()
    {
        Assert.Contains("environment variable MAX_PIXELS=12k: expected a positive whole number", Assert.Throws<OspreyException>(() => ImageOptions.Limits(null, Env(("MAX_PIXELS", "12k")))).Message);
        Assert.Contains("--max_pixels 0: give a positive number of pixels", Assert.Throws<OspreyException>(() => ImageOptions.Limits(new ImageOptions { MaxPixels = 0 }, Env())).Message);
        Assert.Contains("min_pixels 50000 is larger than max_pixels 6272", Assert.Throws<OspreyException>(() => Grid(new ImageOptions { MinPixels = 50000 })).Message);
    }

    [Fact]
    public void EveryImageVerb_TakesThePixelFlags_AndSftTakesNormBbox()
    {
        foreach (var set in new[] { OptionSet.For<SftOptions>(), OptionSet.For<RlhfOptions>(), OptionSet.For<InferOptions>(), OptionSet.For<DeployOptions>() })
        {
            Assert.NotNull(set.Find("max_pixels"));
            Assert.NotNull(set.Find("min_pixels"));
            Assert.Null(set.FindNoEffect("max_pixels"));
        }
        Assert.NotNull(OptionSet.For<SftOptions>().Find("norm_bbox"));
        Assert.Null(OptionSet.For<SftOptions>().FindNoEffect("norm_bbox"));
        Assert.Equal(NormBbox.Norm1000, OptionSet.ParseChoice<NormBbox>("norm_bbox", "norm1000"));
        Assert.Equal(NormBbox.None, OptionSet.ParseChoice<NormBbox>("norm_bbox", "none"));
    }
}
