using Osprey.Images;

namespace Osprey.Tests.Images;

/// <summary>
/// LLaVA-NeXT's anyres arithmetic and CLIP's resize size against values worked by hand from the published rules
/// (transformers' select_best_resolution, get_patch_output_size, unpad_image and get_resize_output_image_size; the
/// working is in each comment).
/// </summary>
public sealed class AnyResTests
{
    static readonly (int, int)[] Llava16 = [(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)];

    [Fact]
    public void BestResolution_KeepsMostPixelsThenWastesLeast()
    {
        // 480x640 (h x w): 336x672 keeps 448*336 = 150528 px; 672x336 keeps 336*252; 672x672 keeps min(672*504, 640*480)
        // = 307200, the most; 1008x336 keeps 84672; 336x1008 keeps 150528.
        Assert.Equal((672, 672), AnyRes.SelectBestResolution(480, 640, Llava16));
        // 80x220 over the fixture pinpoints: 28x84 keeps 77*28 = 2156 px, the others at most 56*20 = 1120.
        Assert.Equal((28, 84), AnyRes.SelectBestResolution(80, 220, [(28, 56), (56, 28), (56, 56), (28, 84), (84, 28)]));
        // 100x100: 336x672, 672x336 and 672x672 all keep the whole 10000 px; 336x672 wastes least (first of the tie).
        Assert.Equal((336, 672), AnyRes.SelectBestResolution(100, 100, Llava16));
    }

    [Fact]
    public void PatchOutputSize_FitsTheConstrainedSide()
    {
        // 480x640 into 672x672: scale_w 1.05 < scale_h 1.4, so width 672 and height ceil(480 * 1.05) = 504.
        Assert.Equal((504, 672), AnyRes.PatchOutputSize(480, 640, (672, 672)));
        // 150x60 into 84x28 (h x w): scale_w 28/60 = 0.467 < 84/150 = 0.56: width 28, height ceil(150 * 0.4667) = 70.
        Assert.Equal((70, 28), AnyRes.PatchOutputSize(150, 60, (84, 28)));
    }

    [Fact]
    public void Unpadded_RemovesTheEvenPadding()
    {
        // 480x640 on a 48x48 grid: aspect 1.333 > 1, new height round(480 * 48/640) = 36, padding (48 - 36) // 2 = 6.
        Assert.Equal((6, 36, 0, 48), AnyRes.Unpadded(480, 640, 48, 48));
        // 150x60 (h x w) on a 12x4 grid: aspect 0.4 > 1/3, new height round(150 * 4/60) = 10, padding (12 - 10) // 2 = 1.
        Assert.Equal((1, 10, 0, 4), AnyRes.Unpadded(150, 60, 12, 4));
        // 80x220 on a 4x12 grid: aspect 2.75 < 3, new width round(220 * 4/80) = 11, padding (12 - 11) // 2 = 0.
        Assert.Equal((0, 4, 0, 12), AnyRes.Unpadded(80, 220, 4, 12));
    }

    [Fact]
    public void ClipResize_ShortestEdgeThenTruncatedLongSide()
    {
        var p = new ClipImageProcessor { ShortestEdge = 336 };
        // 480x640: the height is shorter: 336 x int(336 * 640 / 480) = 336 x 448.
        Assert.Equal((336, 448), p.ResizedSize(480, 640));
        // 150x60: the width is shorter: int(336 * 150 / 60) = 840 x 336.
        Assert.Equal((840, 336), p.ResizedSize(150, 60));
        // 90x130 to 46: int(46 * 130 / 90) = int(66.44) = 66.
        Assert.Equal((46, 66), new ClipImageProcessor { ShortestEdge = 46 }.ResizedSize(90, 130));
        // SigLIP: exactly size.height x size.width.
        Assert.Equal((32, 32), new ClipImageProcessor { ShortestEdge = null, ResizeHeight = 32, ResizeWidth = 32 }.ResizedSize(90, 130));
    }

    [Fact]
    public void CenterCrop_TakesTheMiddleAndPadsShortSides()
    {
        // 5 wide x 3 high, pixel value = 10 * column + row in every channel.
        var px = new byte[5 * 3 * 3];
        for (var y = 0; y < 3; y++)
            for (var x = 0; x < 5; x++)
                for (var c = 0; c < 3; c++) px[(y * 5 + x) * 3 + c] = (byte)(10 * x + y);
        var img = new RgbImage(5, 3, px);
        // 3x3 crop: left (5 - 3) // 2 = 1, top 0: columns 1..3.
        var crop = ClipImageProcessor.CenterCrop(img, 3, 3);
        Assert.Equal((3, 3), (crop.Width, crop.Height));
        Assert.Equal(new byte[] { 10, 20, 30 }, new[] { crop.Pixels[0], crop.Pixels[3], crop.Pixels[6] });
        // 5 high x 2 wide: the height is padded by ceil((5 - 3) / 2) = 1 row of zeros on top (and one below); the
        // width is cropped from left (5 - 2) // 2 = 1.
        var padded = ClipImageProcessor.CenterCrop(img, 5, 2);
        Assert.Equal((2, 5), (padded.Width, padded.Height));
        Assert.Equal(0, padded.Pixels[0]);
        Assert.Equal(10, padded.Pixels[2 * 3]);      // row 1 = image row 0, column 1
        Assert.Equal(22, padded.Pixels[(3 * 2 + 1) * 3]); // row 3 = image row 2, column 2
        Assert.Equal(0, padded.Pixels[(4 * 2) * 3]);
    }
}
