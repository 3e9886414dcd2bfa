using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Osprey.Datasets;

/// <summary>
/// The <c>"objects"</c> field of ms-swift's grounding rows (docs/source_en/Customization/Custom-dataset.md, "Grounding"):
/// <c>{"ref": ["a dog", …], "bbox": [[x1, y1, x2, y2], [x, y], …], "bbox_type": "real"|"norm1", "image_id": [0, …]}</c>.
/// Each <c>&lt;ref-object&gt;</c> tag in the messages takes the next name and each <c>&lt;bbox&gt;</c> tag the next box, in
/// message order; a box is a point ([x, y]) or corners ([x1, y1, x2, y2]) in pixels of the original image
/// (<c>real</c>, the default) or as fractions 0-1 of it (<c>norm1</c>); <c>image_id</c> says which image each box is
/// on (default 0). <see cref="Render"/> writes them as Qwen-VL's grounding text.
/// </summary>
/// <param name="Refs">Names, in tag order.</param>
/// <param name="Boxes">Boxes (even number of coordinates, x then y), in tag order.</param>
/// <param name="Normalised">Whether the boxes are fractions 0-1 of the image (<c>"bbox_type": "norm1"</c>).</param>
/// <param name="ImageIds">For each box, the index of its image in the row's images.</param>
public sealed record GroundingObjects(IReadOnlyList<string> Refs, IReadOnlyList<double[]> Boxes, bool Normalised, IReadOnlyList<int> ImageIds)
{
    /// <summary>The tag ms-swift replaces with the next object's name.</summary>
    public const string RefTag = "<ref-object>";

    /// <summary>The tag ms-swift replaces with the next box.</summary>
    public const string BoxTag = "<bbox>";

    /// <summary>Reads <paramref name="objects"/> of the row <paramref name="where"/> (file and line) with
    /// <paramref name="imageCount"/> images; every error names the field and the fix.</summary>
    public static GroundingObjects Parse(JsonElement objects, string where, int imageCount)
    {
        if (objects.ValueKind != JsonValueKind.Object)
            throw new OspreyException($"{where}: \"objects\" must be an object such as {{\"ref\": [\"a dog\"], \"bbox\": [[x1, y1, x2, y2]]}}.");
        var refs = new List<string>();
        if (objects.TryGetProperty("ref", out var r) && r.ValueKind != JsonValueKind.Null)
        {
            if (r.ValueKind != JsonValueKind.Array) throw new OspreyException($"{where}: \"objects.ref\" must be a list of names, e.g. [\"a dog\"].");
            var i = 0;
            foreach (var e in r.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String) throw new OspreyException($"{where}: \"objects.ref[{i}]\" must be a name (a string).");
                refs.Add(e.GetString()!);
                i++;
            }
        }
        var normalised = false;
        if (objects.TryGetProperty("bbox_type", out var bt) && bt.ValueKind != JsonValueKind.Null)
            normalised = bt.ValueKind == JsonValueKind.String && bt.GetString() is "real" or "norm1"
                ? bt.GetString() == "norm1"
                : throw new OspreyException($"{where}: \"objects.bbox_type\" must be \"real\" (pixels, the default) or \"norm1\" (fractions 0-1 of the image).");
        var boxes = new List<double[]>();
        if (objects.TryGetProperty("bbox", out var b) && b.ValueKind != JsonValueKind.Null)
        {
            if (b.ValueKind != JsonValueKind.Array) throw new OspreyException($"{where}: \"objects.bbox\" must be a list of boxes, e.g. [[x1, y1, x2, y2]].");
            var i = 0;
            foreach (var e in b.EnumerateArray())
            {
                var field = $"objects.bbox[{i}]";
                if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() is 0 || e.GetArrayLength() % 2 != 0 || e.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Number))
                    throw new OspreyException($"{where}: \"{field}\" must be [x1, y1, x2, y2] (corners) or [x, y] (a point) of numbers, got {e.GetRawText()}.");
                var box = e.EnumerateArray().Select(v => v.GetDouble()).ToArray();
                if (box.Any(v => !double.IsFinite(v) || v < 0))
                    throw new OspreyException($"{where}: \"{field}\" = {e.GetRawText()} has a negative coordinate; boxes are measured from the image's top-left corner.");
                if (box.Length == 4 && (box[2] < box[0] || box[3] < box[1]))
                    throw new OspreyException($"{where}: \"{field}\" = {e.GetRawText()} has its second corner above or left of its first; write [x1, y1, x2, y2] with the top-left corner first.");
                boxes.Add(box);
                i++;
            }
        }
        var ids = new List<int>();
        if (objects.TryGetProperty("image_id", out var im) && im.ValueKind != JsonValueKind.Null)
        {
            if (im.ValueKind != JsonValueKind.Array) throw new OspreyException($"{where}: \"objects.image_id\" must be a list with the image index (from 0) of each box.");
            var i = 0;
            foreach (var e in im.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out var id) || id < 0 || id >= imageCount)
                    throw new OspreyException($"{where}: \"objects.image_id[{i}]\" = {e.GetRawText()} is not an image of this row; use 0 to {imageCount - 1} (the row has {imageCount} image(s)).");
                ids.Add(id);
                i++;
            }
            if (ids.Count > boxes.Count)
                throw new OspreyException($"{where}: \"objects.image_id\" lists {ids.Count} entries but \"objects.bbox\" has {boxes.Count} box(es); give one image index per box.");
        }
        if (boxes.Count > 0 && imageCount == 0)
            throw new OspreyException($"{where}: \"objects.bbox\" has boxes but the row has no \"images\"; a box is measured on an image.");
        while (ids.Count < boxes.Count) ids.Add(0); // ms-swift: boxes without an image_id are on the first image
        return new GroundingObjects(refs, boxes, normalised, ids);
    }

    /// <summary>
    /// ms-swift's --norm_bbox default for the model folder: <see cref="NormBbox.None"/> (pixels of the resized image) for
    /// Qwen2.5-VL, whose grounding data is in absolute coordinates, and <see cref="NormBbox.Norm1000"/> otherwise
    /// (Qwen2-VL; Custom-dataset.md, "Grounding"; ms-swift's Qwen2_5VLTemplate sets norm_bbox = 'none', the base
    /// template 'norm1000').
    /// </summary>
    public static NormBbox DefaultNormBbox(string modelFolder)
    {
        var file = Path.Combine(modelFolder, "config.json");
        if (!File.Exists(file)) return NormBbox.Norm1000;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model_type", out var t)
                && t.ValueKind == JsonValueKind.String && t.GetString() == "qwen2_5_vl" ? NormBbox.None : NormBbox.Norm1000;
        }
        catch (JsonException e) { throw new OspreyException($"{file}: not valid JSON ({e.Message}); restore the file from the model's repository."); }
    }

    /// <summary>How many times <paramref name="tag"/> occurs in <paramref name="text"/>.</summary>
    public static int Count(string text, string tag)
    {
        var c = 0;
        for (var i = text.IndexOf(tag, StringComparison.Ordinal); i >= 0; i = text.IndexOf(tag, i + tag.Length, StringComparison.Ordinal)) c++;
        return c;
    }

    /// <summary>Checks that the messages' <see cref="RefTag"/> and <see cref="BoxTag"/> tags match the lists one to one.</summary>
    public void CheckTags(IEnumerable<string> texts, string where)
    {
        var list = texts.ToList();
        int refTags = list.Sum(t => Count(t, RefTag)), boxTags = list.Sum(t => Count(t, BoxTag));
        if (refTags != Refs.Count)
            throw new OspreyException($"{where}: the messages have {refTags} {RefTag} tag(s) but \"objects.ref\" lists {Refs.Count}; put one {RefTag} where each name goes.");
        if (boxTags != Boxes.Count)
            throw new OspreyException($"{where}: the messages have {boxTags} {BoxTag} tag(s) but \"objects.bbox\" lists {Boxes.Count}; put one {BoxTag} where each box goes.");
    }

    /// <summary>
    /// The boxes as the model reads them: ms-swift's Template.normalize_bbox (swift/llm/template/base.py) computes
    /// int(round(x / source_width × target_width)) with Python's half-to-even round, where the source is the original
    /// image (1 for <c>norm1</c> boxes) and the target 1000 (<see cref="NormBbox.Norm1000"/>) or the resized image
    /// (<see cref="NormBbox.None"/>); y likewise with the heights. A box outside its image is an error naming it.
    /// </summary>
    /// <param name="original">Each image's (width, height) as decoded.</param>
    /// <param name="resized">Each image's (width, height) after smart_resize.</param>
    /// <param name="norm">The target: a 0-1000 grid or the resized image's pixels.</param>
    /// <param name="where">The row (file and line), for errors.</param>
    public IReadOnlyList<long[]> Scaled(IReadOnlyList<(int Width, int Height)> original, IReadOnlyList<(int Width, int Height)> resized, NormBbox norm, string where)
    {
        var result = new List<long[]>();
        for (var i = 0; i < Boxes.Count; i++)
        {
            var box = Boxes[i];
            var id = ImageIds[i];
            var (w, h) = original[id];
            double srcW = Normalised ? 1 : w, srcH = Normalised ? 1 : h;
            for (var k = 0; k < box.Length; k += 2)
                if (box[k] > srcW || box[k + 1] > srcH)
                    throw new OspreyException(Normalised
                        ? $"{where}: \"objects.bbox[{i}]\" = [{Join(box)}] lies outside image {id} (\"bbox_type\": \"norm1\" coordinates run from 0 to 1); fix the box or drop \"bbox_type\" if it is in pixels."
                        : $"{where}: \"objects.bbox[{i}]\" = [{Join(box)}] lies outside image {id}, which is {w}x{h} pixels; fix the box, or set \"bbox_type\": \"norm1\" if it is in fractions 0-1.");
            var (tw, th) = norm == NormBbox.Norm1000 ? (1000.0, 1000.0) : (resized[id].Width, resized[id].Height);
            var scaled = new long[box.Length];
            for (var k = 0; k < box.Length; k += 2)
            {
                scaled[k] = (long)Math.Round(box[k] / srcW * tw, MidpointRounding.ToEven);
                scaled[k + 1] = (long)Math.Round(box[k + 1] / srcH * th, MidpointRounding.ToEven);
            }
            result.Add(scaled);
        }
        return result;
    }

    /// <summary>
    /// <paramref name="texts"/> with every <see cref="RefTag"/> replaced by <c>&lt;|object_ref_start|&gt;name&lt;|object_ref_end|&gt;</c>
    /// and every <see cref="BoxTag"/> by <c>&lt;|box_start|&gt;(x1,y1),(x2,y2)&lt;|box_end|&gt;</c>, Qwen2-VL's grounding text
    /// (the format ms-swift's QWENVL_BBOX_FORMAT calls "legacy", its default), taking names and <paramref name="scaled"/>
    /// boxes in order across the messages.
    /// </summary>
    public IReadOnlyList<string> Render(IReadOnlyList<string> texts, IReadOnlyList<long[]> scaled)
    {
        int nextRef = 0, nextBox = 0;
        var result = new List<string>(texts.Count);
        foreach (var text in texts)
        {
            var sb = new StringBuilder();
            var at = 0;
            while (true)
            {
                int r = text.IndexOf(RefTag, at, StringComparison.Ordinal), b = text.IndexOf(BoxTag, at, StringComparison.Ordinal);
                if (r < 0 && b < 0) break;
                if (r >= 0 && (b < 0 || r < b))
                {
                    sb.Append(text, at, r - at).Append("<|object_ref_start|>").Append(Refs[nextRef++]).Append("<|object_ref_end|>");
                    at = r + RefTag.Length;
                }
                else
                {
                    sb.Append(text, at, b - at).Append("<|box_start|>").Append(Points(scaled[nextBox++])).Append("<|box_end|>");
                    at = b + BoxTag.Length;
                }
            }
            result.Add(sb.Append(text, at, text.Length - at).ToString());
        }
        return result;
    }

    static string Points(long[] box)
    {
        var parts = new List<string>();
        for (var k = 0; k < box.Length; k += 2)
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"({box[k]},{box[k + 1]})"));
        return string.Join(",", parts);
    }

    static string Join(double[] box) => string.Join(", ", box.Select(v => v.ToString(CultureInfo.InvariantCulture)));
}
