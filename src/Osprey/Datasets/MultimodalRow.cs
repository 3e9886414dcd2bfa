using System.Text;
using System.Text.Json;

namespace Osprey.Datasets;

/// <summary>
/// A conversation with images, as ms-swift's multimodal rows write it: <c>{"messages": [{"role": "user", "content":
/// "&lt;image&gt;What is this?"}, …], "images": ["a.png", "data:image/png;base64,…"]}</c>, each <c>&lt;image&gt;</c> tag
/// standing for the next image; or with OpenAI content parts (<c>{"type": "image_url", "image_url": {"url": …}}</c>,
/// <c>{"type": "image", "image": …}</c>, <c>{"type": "text", "text": …}</c>), which become tags in place.
/// Grounding rows add ms-swift's <c>"objects"</c> (<see cref="GroundingObjects"/>), whose names and boxes fill the
/// <c>&lt;ref-object&gt;</c> and <c>&lt;bbox&gt;</c> tags.
/// </summary>
/// <param name="Messages">(role, text) with one <see cref="ImageTag"/> where each image goes.</param>
/// <param name="Images">The image references in tag order (paths, data URLs).</param>
public sealed record MultimodalRow(IReadOnlyList<(string Role, string Text)> Messages, IReadOnlyList<string> Images)
{
    /// <summary>A grounding row's objects (names and boxes for its tags); null when the row has none.</summary>
    public GroundingObjects? Objects { get; init; }

    /// <summary>The tag ms-swift uses for an image in message text.</summary>
    public const string ImageTag = "<image>";

    /// <summary>Reads a row; <paramref name="where"/> (file and line) names it in errors. The number of tags must
    /// equal the number of images.</summary>
    public static MultimodalRow Parse(JsonElement row, string where)
    {
        if (row.ValueKind != JsonValueKind.Object || !row.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw new OspreyException($"{where}: a multimodal row needs a \"messages\" list.");
        var images = new List<string>();
        var partImages = new List<string>();
        if (row.TryGetProperty("images", out var imgs))
        {
            if (imgs.ValueKind == JsonValueKind.String) images.Add(imgs.GetString()!);
            else if (imgs.ValueKind == JsonValueKind.Array)
                foreach (var i in imgs.EnumerateArray()) images.Add(Reference(i, where, "images"));
            else if (imgs.ValueKind != JsonValueKind.Null)
                throw new OspreyException($"{where}: \"images\" must be a list of paths or data URLs.");
        }
        var list = new List<(string, string)>();
        var n = 0;
        foreach (var m in messages.EnumerateArray())
        {
            n++;
            var role = m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : throw new OspreyException($"{where}: message {n} has no \"role\".");
            if (!m.TryGetProperty("content", out var content)) throw new OspreyException($"{where}: message {n} has no \"content\".");
            if (content.ValueKind == JsonValueKind.String) { list.Add((role, content.GetString()!)); continue; }
            if (content.ValueKind != JsonValueKind.Array) throw new OspreyException($"{where}: message {n}'s \"content\" must be text or a list of parts.");
            var text = new StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                var type = part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                switch (type)
                {
                    case "text":
                        text.Append(part.TryGetProperty("text", out var tx) ? tx.GetString() : "");
                        break;
                    case "image_url":
                        if (!part.TryGetProperty("image_url", out var iu)) throw new OspreyException($"{where}: message {n}: an image_url part needs \"image_url\": {{\"url\": ...}}.");
                        partImages.Add(iu.ValueKind == JsonValueKind.String ? iu.GetString()! : Reference(iu.TryGetProperty("url", out var u) ? u : default, where, "image_url.url"));
                        text.Append(ImageTag);
                        break;
                    case "image":
                        if (part.TryGetProperty("image", out var im)) partImages.Add(Reference(im, where, "image"));
                        else if (part.TryGetProperty("image_url", out var iu2)) partImages.Add(Reference(iu2, where, "image_url"));
                        else throw new OspreyException($"{where}: message {n}: an image part needs \"image\": a path or data URL.");
                        text.Append(ImageTag);
                        break;
                    default:
                        throw new OspreyException($"{where}: message {n}: content part type '{type}' is not supported (text, image_url, image).");
                }
            }
            list.Add((role, text.ToString()));
        }
        if (partImages.Count > 0 && images.Count > 0)
            throw new OspreyException($"{where}: images come both from content parts and from \"images\"; use one of the two.");
        if (partImages.Count > 0) images = partImages;
        var tags = list.Sum(m => Count(m.Item2));
        if (tags != images.Count)
            throw new OspreyException($"{where}: the messages have {tags} {ImageTag} tag(s) but \"images\" lists {images.Count}; put one {ImageTag} where each image belongs.");
        GroundingObjects? objects = null;
        // Without "objects", ms-swift leaves <ref-object>/<bbox> as literal text; so does this.
        if (row.TryGetProperty("objects", out var obj) && obj.ValueKind != JsonValueKind.Null)
        {
            objects = GroundingObjects.Parse(obj, where, images.Count);
            objects.CheckTags(list.Select(m => m.Item2), where);
        }
        return new MultimodalRow(list, images) { Objects = objects };
    }

    /// <summary>
    /// This row with its <c>&lt;ref-object&gt;</c>/<c>&lt;bbox&gt;</c> tags written as Qwen-VL grounding text
    /// (<see cref="GroundingObjects.Render"/>), boxes scaled from the <paramref name="original"/> image sizes to what
    /// <paramref name="norm"/> asks (<paramref name="resized"/>: the sizes after smart_resize); the row itself when it
    /// has no objects. <paramref name="where"/> (file and line) names the row in errors.
    /// </summary>
    public MultimodalRow Grounded(IReadOnlyList<(int Width, int Height)> original, IReadOnlyList<(int Width, int Height)> resized, NormBbox norm, string where)
    {
        if (Objects is not { } objects) return this;
        var scaled = objects.Scaled(original, resized, norm, where);
        var texts = objects.Render(Messages.Select(m => m.Text).ToList(), scaled);
        return new MultimodalRow(Messages.Select((m, i) => (m.Role, texts[i])).ToList(), Images);
    }

    /// <summary>How many <see cref="ImageTag"/>s <paramref name="text"/> holds.</summary>
    public static int Count(string text)
    {
        var c = 0;
        for (var i = text.IndexOf(ImageTag, StringComparison.Ordinal); i >= 0; i = text.IndexOf(ImageTag, i + ImageTag.Length, StringComparison.Ordinal)) c++;
        return c;
    }

    static string Reference(JsonElement e, string where, string field) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        // ms-swift also writes {"path": ...} (and datasets' {"bytes": ..., "path": ...}).
        JsonValueKind.Object when e.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String => p.GetString()!,
        JsonValueKind.Object when e.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String => u.GetString()!,
        _ => throw new OspreyException($"{where}: \"{field}\" entries must be a path or data URL string (or {{\"path\": ...}})."),
    };
}
