using System.Text.Json;

namespace Osprey.Images;

/// <summary>
/// transformers' CLIPImageProcessor and SiglipImageProcessor (PIL backend), the image processors of LLaVA: convert to
/// RGB, resize with PIL's bicubic (shortest edge to size.shortest_edge keeping the aspect ratio, or exactly to
/// size.height x size.width as SigLIP does), centre-crop to crop_size (zero-padding a side that is too short), rescale
/// by rescale_factor and normalise per channel. Settings come from the model folder's preprocessor_config.json (hub
/// checkpoints) or the image_processor entry of transformers 5's processor_config.json.
/// </summary>
public sealed record ClipImageProcessor
{
    static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];
    static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>size.shortest_edge: the resized image's shorter side (null when <see cref="ResizeHeight"/> is set).</summary>
    public int? ShortestEdge { get; init; } = 224;
    /// <summary>size.height (with <see cref="ResizeWidth"/>): resize to exactly this size, ignoring the aspect ratio.</summary>
    public int? ResizeHeight { get; init; }
    /// <summary>size.width.</summary>
    public int? ResizeWidth { get; init; }
    /// <summary>crop_size.height.</summary>
    public int CropHeight { get; init; } = 224;
    /// <summary>crop_size.width.</summary>
    public int CropWidth { get; init; } = 224;
    /// <summary>Whether to resize.</summary>
    public bool DoResize { get; init; } = true;
    /// <summary>Whether to centre-crop.</summary>
    public bool DoCenterCrop { get; init; } = true;
    /// <summary>Whether to rescale.</summary>
    public bool DoRescale { get; init; } = true;
    /// <summary>Whether to normalise.</summary>
    public bool DoNormalize { get; init; } = true;
    /// <summary>Multiplier of the 0..255 values.</summary>
    public double RescaleFactor { get; init; } = 1.0 / 255.0;
    /// <summary>Per-channel mean.</summary>
    public IReadOnlyList<double> ImageMean { get; init; } = ClipMean;
    /// <summary>Per-channel standard deviation.</summary>
    public IReadOnlyList<double> ImageStd { get; init; } = ClipStd;
    /// <summary>LLaVA-NeXT's image_grid_pinpoints ((height, width) each); empty for plain CLIP/SigLIP.</summary>
    public IReadOnlyList<(int Height, int Width)> GridPinpoints { get; init; } = [];

    /// <summary>The output size of the single-crop pipeline (after resizing and cropping).</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        var (h, w) = DoResize ? ResizedSize(height, width) : (height, width);
        return DoCenterCrop ? (CropHeight, CropWidth) : (h, w);
    }

    /// <summary>The processor settings of <paramref name="modelFolder"/> (defaults where absent).</summary>
    public static ClipImageProcessor FromFolder(string modelFolder)
    {
        var pre = Path.Combine(modelFolder, "preprocessor_config.json");
        var proc = Path.Combine(modelFolder, "processor_config.json");
        if (File.Exists(pre)) return Read(File.ReadAllText(pre), pre, nested: false);
        if (File.Exists(proc)) return Read(File.ReadAllText(proc), proc, nested: true);
        return new ClipImageProcessor();
    }

    /// <summary>Reads the settings from the JSON of a preprocessor_config.json (or, <paramref name="nested"/>, a
    /// processor_config.json's image_processor entry).</summary>
    internal static ClipImageProcessor Read(string json, string file, bool nested)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new OspreyException($"{file}: not valid JSON ({e.Message}); restore the file from the model's repository."); }
        using (doc)
        {
            var root = doc.RootElement;
            if (nested && root.TryGetProperty("image_processor", out var ip)) root = ip;
            var p = new ClipImageProcessor();
            if (root.ValueKind != JsonValueKind.Object) return p;
            var type = root.TryGetProperty("image_processor_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() ?? "" : "";
            bool? B(string name) => root.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
            double[]? D3(string name)
            {
                if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
                if (v.ValueKind == JsonValueKind.Number) return [v.GetDouble(), v.GetDouble(), v.GetDouble()];
                if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != 3)
                    throw new OspreyException($"{file}: \"{name}\" must be a number or 3 numbers (one per RGB channel).");
                return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
            }
            int? Side(JsonElement obj, string key) => obj.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
            if (root.TryGetProperty("resample", out var rs) && rs.ValueKind == JsonValueKind.Number && rs.GetInt32() != 3)
                throw new OspreyException($"{file}: resample {rs.GetInt32()} is not supported; Osprey resizes with PIL's bicubic (resample 3), which CLIP, SigLIP and LLaVA checkpoints use.");
            if (type == "LlavaImageProcessor" && B("do_pad") == true)
                throw new OspreyException($"{file}: LlavaImageProcessor's do_pad (padding to a square first) is not supported; set \"do_pad\": false or use the checkpoint's CLIPImageProcessor settings.");
            if (root.TryGetProperty("size", out var size))
            {
                if (size.ValueKind == JsonValueKind.Number) p = p with { ShortestEdge = size.GetInt32() };
                else if (size.ValueKind == JsonValueKind.Object)
                {
                    int? h = Side(size, "height"), w = Side(size, "width"), se = Side(size, "shortest_edge");
                    if (h is not null && w is not null) p = p with { ShortestEdge = null, ResizeHeight = h, ResizeWidth = w };
                    else if (se is not null) p = p with { ShortestEdge = se };
                    else throw new OspreyException($"{file}: \"size\" needs shortest_edge, or height and width.");
                }
            }
            else if (type.StartsWith("Siglip", StringComparison.Ordinal))
                p = p with { ShortestEdge = null, ResizeHeight = 224, ResizeWidth = 224 };
            if (root.TryGetProperty("crop_size", out var crop))
            {
                if (crop.ValueKind == JsonValueKind.Number) p = p with { CropHeight = crop.GetInt32(), CropWidth = crop.GetInt32() };
                else if (crop.ValueKind == JsonValueKind.Object)
                    p = p with { CropHeight = Side(crop, "height") ?? p.CropHeight, CropWidth = Side(crop, "width") ?? p.CropWidth };
            }
            // SigLIP's processor has no centre crop; CLIP's crops unless told not to.
            var siglip = type.StartsWith("Siglip", StringComparison.Ordinal);
            var pinpoints = new List<(int, int)>();
            if (root.TryGetProperty("image_grid_pinpoints", out var pp) && pp.ValueKind == JsonValueKind.Array)
                foreach (var e in pp.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 2)
                        throw new OspreyException($"{file}: image_grid_pinpoints must list [height, width] pairs.");
                    pinpoints.Add((e[0].GetInt32(), e[1].GetInt32()));
                }
            var q = p with
            {
                DoResize = B("do_resize") ?? p.DoResize,
                DoCenterCrop = B("do_center_crop") ?? !siglip,
                DoRescale = B("do_rescale") ?? p.DoRescale,
                DoNormalize = B("do_normalize") ?? p.DoNormalize,
                RescaleFactor = root.TryGetProperty("rescale_factor", out var rf) && rf.ValueKind == JsonValueKind.Number ? rf.GetDouble() : p.RescaleFactor,
                ImageMean = D3("image_mean") ?? (siglip ? [0.5, 0.5, 0.5] : p.ImageMean),
                ImageStd = D3("image_std") ?? (siglip ? [0.5, 0.5, 0.5] : p.ImageStd),
                GridPinpoints = pinpoints,
            };
            if (q.ShortestEdge is <= 0 || q.ResizeHeight is <= 0 || q.ResizeWidth is <= 0 || q.CropHeight <= 0 || q.CropWidth <= 0)
                throw new OspreyException($"{file}: size and crop_size must be positive.");
            return q;
        }
    }

    /// <summary>transformers' get_resize_output_image_size: the shorter side to shortest_edge, the longer scaled and
    /// truncated (int()); or size.height x size.width exactly.</summary>
    public (int Height, int Width) ResizedSize(int height, int width)
    {
        if (ShortestEdge is not int s) return (ResizeHeight!.Value, ResizeWidth!.Value);
        if (width <= height) return ((int)((long)s * height / (double)width), s);
        return (s, (int)((long)s * width / (double)height));
    }

    /// <summary>One image through the single-crop pipeline: pixel_values [1, 3, H, W].</summary>
    public ImageTiles Process(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var (values, h, w) = Pipeline(image);
        return new ImageTiles(values, 1, h, w, image.Height, image.Width);
    }

    /// <summary>Resize, centre crop, rescale and normalise one picture into channel-first floats.</summary>
    internal (float[] Values, int Height, int Width) Pipeline(RgbImage image)
    {
        var img = image;
        if (DoResize)
        {
            var (h, w) = ResizedSize(img.Height, img.Width);
            if (h != img.Height || w != img.Width) img = PilBicubic.Resize(img, w, h);
        }
        if (DoCenterCrop) img = CenterCrop(img, CropHeight, CropWidth);
        return (Normalize(img), img.Height, img.Width);
    }

    /// <summary>transformers' center_crop: the middle crop (offsets floor((size - crop) / 2)); a side shorter than the
    /// crop is first zero-padded evenly (the extra row or column after).</summary>
    internal static RgbImage CenterCrop(RgbImage img, int cropH, int cropW)
    {
        if (img.Height == cropH && img.Width == cropW) return img;
        int newH = Math.Max(cropH, img.Height), newW = Math.Max(cropW, img.Width);
        int padTop = (newH - img.Height + 1) / 2, padLeft = (newW - img.Width + 1) / 2;
        // Python's // floors: the crop window in the unpadded image may start above or left of it.
        int top = FloorDiv(img.Height - cropH, 2) + padTop, left = FloorDiv(img.Width - cropW, 2) + padLeft;
        int y0 = Math.Max(0, top), x0 = Math.Max(0, left);
        int y1 = Math.Min(newH, top + cropH), x1 = Math.Min(newW, left + cropW);
        var outp = new byte[(y1 - y0) * (x1 - x0) * 3];
        for (var y = y0; y < y1; y++)
            for (var x = x0; x < x1; x++)
            {
                int sy = y - padTop, sx = x - padLeft;
                if (sy < 0 || sy >= img.Height || sx < 0 || sx >= img.Width) continue;
                Array.Copy(img.Pixels, (sy * img.Width + sx) * 3, outp, ((y - y0) * (x1 - x0) + x - x0) * 3, 3);
            }
        return new RgbImage(x1 - x0, y1 - y0, outp);
    }

    static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);

    /// <summary>Rescale then normalise into channel-first float32, in float32 as HF does (the last bit equal).</summary>
    internal float[] Normalize(RgbImage img)
    {
        int h = img.Height, w = img.Width;
        var plane = new float[3 * h * w];
        var mean = new float[3];
        var std = new float[3];
        for (var c = 0; c < 3; c++) { mean[c] = (float)ImageMean[c]; std[c] = (float)ImageStd[c]; }
        var px = img.Pixels;
        for (var i = 0; i < h * w; i++)
            for (var c = 0; c < 3; c++)
            {
                var v = DoRescale ? (float)(px[i * 3 + c] * RescaleFactor) : px[i * 3 + c];
                if (DoNormalize) v = (v - mean[c]) / std[c];
                plane[c * h * w + i] = v;
            }
        return plane;
    }
}
