using System.Text.Json;

namespace Osprey.Images;

/// <summary>
/// transformers' Qwen2VLImageProcessor (PIL backend; Qwen2.5-VL uses the same): convert to RGB, smart_resize to
/// multiples of patch_size * merge_size within [min_pixels, max_pixels], PIL bicubic, rescale by 1/255, normalise
/// with the CLIP mean and std, duplicate the frame temporal_patch_size times, and flatten patches in merge-window
/// order. Settings come from the model folder's preprocessor_config.json (hub checkpoints) or the image_processor
/// entry of transformers 5's processor_config.json; --max_pixels/--min_pixels or MAX_PIXELS/MIN_PIXELS override.
/// </summary>
public sealed record Qwen2VlImageProcessor
{
    static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];
    static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>Fewest pixels after resizing (size.shortest_edge / min_pixels).</summary>
    public long MinPixels { get; init; } = 56 * 56;
    /// <summary>Most pixels after resizing (size.longest_edge / max_pixels).</summary>
    public long MaxPixels { get; init; } = 28 * 28 * 1280;
    /// <summary>ViT patch side in pixels.</summary>
    public int PatchSize { get; init; } = 14;
    /// <summary>Frames per temporal patch (an image is repeated this often).</summary>
    public int TemporalPatchSize { get; init; } = 2;
    /// <summary>Patches merged per side into one language-model token.</summary>
    public int MergeSize { get; init; } = 2;
    /// <summary>Per-channel mean.</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = ClipMean;
    /// <summary>Per-channel standard deviation.</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = ClipStd;
    /// <summary>Multiplier of the 0..255 values.</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255.0;
    /// <summary>Whether to resize (smart_resize).</summary>
    public bool DoResize { get; init; } = true;
    /// <summary>Whether to rescale.</summary>
    public bool DoRescale { get; init; } = true;
    /// <summary>Whether to normalise.</summary>
    public bool DoNormalize { get; init; } = true;

    /// <summary>Floats per flattened patch.</summary>
    public int PatchDim => 3 * TemporalPatchSize * PatchSize * PatchSize;

    /// <summary>Reads the processor settings of <paramref name="modelFolder"/> (defaults where absent) and applies
    /// <paramref name="options"/> and the MAX_PIXELS/MIN_PIXELS environment variables (<see cref="ImageOptions.Limits(ImageOptions?)"/>).</summary>
    public static Qwen2VlImageProcessor FromFolder(string modelFolder, ImageOptions? options = null)
    {
        var p = new Qwen2VlImageProcessor();
        var pre = Path.Combine(modelFolder, "preprocessor_config.json");
        var proc = Path.Combine(modelFolder, "processor_config.json");
        if (File.Exists(pre)) p = Read(p, File.ReadAllText(pre), pre, nested: false);
        else if (File.Exists(proc)) p = Read(p, File.ReadAllText(proc), proc, nested: true);
        var (max, min) = ImageOptions.Limits(options);
        p = p with { MaxPixels = max ?? p.MaxPixels, MinPixels = min ?? p.MinPixels };
        if (p.MinPixels > p.MaxPixels)
            throw new OspreyException($"min_pixels {p.MinPixels} is larger than max_pixels {p.MaxPixels}; lower --min_pixels (MIN_PIXELS) or raise --max_pixels (MAX_PIXELS).");
        return p;
    }

    static Qwen2VlImageProcessor Read(Qwen2VlImageProcessor p, string json, string file, bool nested)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new OspreyException($"{file}: not valid JSON ({e.Message}); restore the file from the model's repository."); }
        using (doc)
        {
            var root = doc.RootElement;
            if (nested && root.TryGetProperty("image_processor", out var ip)) root = ip;
            if (root.ValueKind != JsonValueKind.Object) return p;
            long? L(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;
            bool? B(string name) => root.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
            double[]? D3(string name)
            {
                if (!root.TryGetProperty(name, out var v)) return null;
                if (v.ValueKind == JsonValueKind.Number) return [v.GetDouble(), v.GetDouble(), v.GetDouble()];
                if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != 3)
                    throw new OspreyException($"{file}: \"{name}\" must be a number or 3 numbers (one per RGB channel).");
                return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
            }
            long? min = L("min_pixels"), max = L("max_pixels");
            if (root.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Object)
            {
                if (min is null && size.TryGetProperty("shortest_edge", out var se) && se.ValueKind == JsonValueKind.Number) min = se.GetInt64();
                if (max is null && size.TryGetProperty("longest_edge", out var le) && le.ValueKind == JsonValueKind.Number) max = le.GetInt64();
            }
            var rescale = root.TryGetProperty("rescale_factor", out var rf) && rf.ValueKind == JsonValueKind.Number ? rf.GetDouble() : p.RescaleFactor;
            var q = p with
            {
                MinPixels = min ?? p.MinPixels,
                MaxPixels = max ?? p.MaxPixels,
                PatchSize = (int)(L("patch_size") ?? p.PatchSize),
                TemporalPatchSize = (int)(L("temporal_patch_size") ?? p.TemporalPatchSize),
                MergeSize = (int)(L("merge_size") ?? p.MergeSize),
                ImageMean = D3("image_mean") ?? p.ImageMean,
                ImageStd = D3("image_std") ?? p.ImageStd,
                RescaleFactor = rescale,
                DoResize = B("do_resize") ?? p.DoResize,
                DoRescale = B("do_rescale") ?? p.DoRescale,
                DoNormalize = B("do_normalize") ?? p.DoNormalize,
            };
            if (q.PatchSize <= 0 || q.MergeSize <= 0 || q.TemporalPatchSize <= 0)
                throw new OspreyException($"{file}: patch_size, merge_size and temporal_patch_size must be positive.");
            return q;
        }
    }
    /// <summary>transformers' smart_resize: the (height, width) nearest to the image's, both multiples of
    /// <paramref name="factor"/>, with at most <paramref name="maxPixels"/> and at least <paramref name="minPixels"/>
    /// pixels, keeping the aspect ratio. Python's round() is half-to-even, as Math.Round is.</summary>
    public static (int Height, int Width) SmartResize(int height, int width, int factor, long minPixels, long maxPixels)
    {
        if ((double)Math.Max(height, width) / Math.Min(height, width) > 200)
            throw new OspreyException($"image {width}x{height}: the aspect ratio must be below 200 (Qwen2-VL's limit); crop the image.");
        var hBar = (long)Math.Round((double)height / factor) * factor;
        var wBar = (long)Math.Round((double)width / factor) * factor;
        if (hBar * wBar > maxPixels)
        {
            var beta = Math.Sqrt((double)height * width / maxPixels);
            hBar = Math.Max(factor, (long)Math.Floor(height / beta / factor) * factor);
            wBar = Math.Max(factor, (long)Math.Floor(width / beta / factor) * factor);
        }
        else if (hBar * wBar < minPixels)
        {
            var beta = Math.Sqrt((double)minPixels / ((double)height * width));
            hBar = (long)Math.Ceiling(height * beta / factor) * factor;
            wBar = (long)Math.Ceiling(width * beta / factor) * factor;
        }
        return ((int)hBar, (int)wBar);
    }

    /// <summary>The image's patches and grid, as the processor's pixel_values rows and image_grid_thw.</summary>
    public ImagePatches Process(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var factor = PatchSize * MergeSize;
        var (h, w) = DoResize ? SmartResize(image.Height, image.Width, factor, MinPixels, MaxPixels) : (image.Height, image.Width);
        if (h % factor != 0 || w % factor != 0)
            throw new OspreyException($"image {image.Width}x{image.Height}: without resizing its sides must be multiples of {factor}.");
        var resized = h == image.Height && w == image.Width ? image : PilBicubic.Resize(image, w, h);
        // HF rescales to float32 (from float64) and normalises in float32; doing the same keeps the last bit equal.
        var plane = new float[3 * h * w];
        var mean = new float[3];
        var std = new float[3];
        for (var c = 0; c < 3; c++) { mean[c] = (float)ImageMean[c]; std[c] = (float)ImageStd[c]; }
        var px = resized.Pixels;
        for (var i = 0; i < h * w; i++)
            for (var c = 0; c < 3; c++)
            {
                var v = DoRescale ? (float)(px[i * 3 + c] * RescaleFactor) : px[i * 3 + c];
                if (DoNormalize) v = (v - mean[c]) / std[c];
                plane[c * h * w + i] = v;
            }
        int p = PatchSize, m = MergeSize, tp = TemporalPatchSize;
        int gh = h / p, gw = w / p;
        var dim = PatchDim;
        var values = new float[gh * gw * dim];
        var row = 0;
        // Rows: merge-window row, window column, row inside the window, column inside; columns: channel, temporal
        // copy, pixel row, pixel column (the processor's transpose(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)).
        for (var bh = 0; bh < gh / m; bh++)
            for (var bw = 0; bw < gw / m; bw++)
                for (var mh = 0; mh < m; mh++)
                    for (var mw = 0; mw < m; mw++, row++)
                    {
                        int py = (bh * m + mh) * p, pxl = (bw * m + mw) * p;
                        var o = row * dim;
                        for (var c = 0; c < 3; c++)
                            for (var t = 0; t < tp; t++)
                                for (var i = 0; i < p; i++)
                                {
                                    var src = c * h * w + (py + i) * w + pxl;
                                    Array.Copy(plane, src, values, o, p);
                                    o += p;
                                }
                    }
        return new ImagePatches(values, 1, gh, gw, dim);
    }
}
