using System.Diagnostics;
using System.Text.Json;
using Osprey.Images;

namespace Osprey.Tests.Images;

/// <summary>
/// Decoding (SkiaSharp) and Qwen2-VL preprocessing against tools/vl_image_reference.py, which runs the published
/// algorithm with Debian's PIL and NumPy (python3-pil, python3-numpy; test.sh installs them): the same images drawn
/// and saved by PIL, the same grids, and pixel_values within 1/255 of a pixel level; for the losslessly stored
/// images, whose decoded bytes cannot differ, the resampler must agree to float rounding (1e-5).
/// </summary>
public sealed class ImagePreprocessingTests
{
    static readonly double[] Std = [0.26862954, 0.26130258, 0.27577711];

    static void Reference(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "tools", "vl_image_reference.py"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"vl_image_reference.py {string.Join(" ", args)} failed (needs python3-pil and python3-numpy): {stderr}");
        _ = stdout.Result;
    }

    [Theory]
    [InlineData(3136, 50176)]      // shrinks the larger pictures, enlarges the tiny one
    [InlineData(100352, 200704)]   // everything enlarged (upsampling path of the resampler)
    public void PixelValues_MatchPilReference(long minPixels, long maxPixels)
    {
        using var dir = new TempDirectory();
        var images = Path.Combine(dir.Path, "img");
        Reference("draw", images);
        var files = Directory.GetFiles(images).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(10, files.Length);
        var prefix = dir.File("ref");
        Reference(["process", "--min_pixels", minPixels.ToString(), "--max_pixels", maxPixels.ToString(), "--out", prefix, .. files]);
        var meta = JsonDocument.Parse(File.ReadAllText(prefix + ".json")).RootElement.EnumerateArray().ToArray();
        var bytes = File.ReadAllBytes(prefix + ".bin");
        var reference = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, reference, 0, bytes.Length);

        var processor = new Qwen2VlImageProcessor { MinPixels = minPixels, MaxPixels = maxPixels };
        var offset = 0;
        for (var i = 0; i < files.Length; i++)
        {
            var name = Path.GetFileName(files[i]);
            var patches = processor.Process(ImageDecoder.Load(files[i]));
            var grid = meta[i].GetProperty("grid_thw").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(name, meta[i].GetProperty("file").GetString());
            Assert.Equal(grid, new[] { patches.GridT, patches.GridH, patches.GridW });
            Assert.Equal(1176, patches.PatchDim);
            var n = patches.PixelValues.Length;
            var lossless = !name.EndsWith(".jpg", StringComparison.Ordinal);
            var worst = 0.0;
            for (var j = 0; j < n; j++)
            {
                // Column j % 1176 belongs to channel (j % 1176) / 392; scale back to 0..1 pixel units.
                var channel = j % 1176 / 392;
                worst = Math.Max(worst, Math.Abs(patches.PixelValues[j] - reference[offset + j]) * Std[channel]);
            }
            Assert.True(worst <= (lossless ? 1e-5 : 1.0 / 255 + 1e-6), $"{name}: largest difference {worst * 255:F4}/255 of a pixel level");
            offset += n;
        }
        Assert.Equal(reference.Length, offset);
    }

    [Fact]
    public void SmartResize_FollowsPublishedFormula()
    {
        // Hand-computed: 1000x600 (w x h) with max 28*28*100 = 78400: beta = sqrt(600000/78400) = 2.7664;
        // floor(600/2.7664/28) = 7 -> 196, floor(1000/2.7664/28) = 12 -> 336.
        Assert.Equal((196, 336), Qwen2VlImageProcessor.SmartResize(600, 1000, 28, 3136, 78400));
        // Already within bounds: rounds half to even like Python (42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2).
        Assert.Equal((56, 56), Qwen2VlImageProcessor.SmartResize(42, 70, 28, 3136, 1_000_000));
        var ex = Assert.Throws<OspreyException>(() => Qwen2VlImageProcessor.SmartResize(10, 2100, 28, 3136, 1_000_000));
        Assert.Contains("aspect ratio", ex.Message);
    }

    [Fact]
    public void Settings_ComeFromFolderThenEnvironmentThenFlags()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("preprocessor_config.json"),
            """{"min_pixels": 1000, "max_pixels": 20000, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2, "image_processor_type": "Qwen2VLImageProcessor"}""");
        var p = Qwen2VlImageProcessor.FromFolder(dir.Path);
        Assert.Equal((1000L, 20000L), (p.MinPixels, p.MaxPixels));
        var flags = Qwen2VlImageProcessor.FromFolder(dir.Path, new ImageOptions { MaxPixels = 5000 });
        Assert.Equal(5000L, flags.MaxPixels);

        using var dir5 = new TempDirectory();
        // transformers 5 writes the image processor inside processor_config.json with size.{shortest,longest}_edge.
        File.WriteAllText(dir5.File("processor_config.json"),
            """{"image_processor": {"size": {"shortest_edge": 3136, "longest_edge": 6272}, "image_mean": [0.5, 0.5, 0.5]}}""");
        var p5 = Qwen2VlImageProcessor.FromFolder(dir5.Path);
        Assert.Equal((3136L, 6272L), (p5.MinPixels, p5.MaxPixels));
        Assert.Equal([0.5, 0.5, 0.5], p5.ImageMean);
    }

    [Fact]
    public void Decode_RejectsNonImagesNamingTheSource()
    {
        var ex = Assert.Throws<OspreyException>(() => ImageDecoder.Decode("not an image"u8.ToArray(), "rows.jsonl line 3"));
        Assert.Contains("rows.jsonl line 3", ex.Message);
    }
}
