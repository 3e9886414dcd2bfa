using Osprey.Inference;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Models;

namespace Osprey.Training;

/// <summary>
/// Preference rows with images for a Qwen2-VL / Qwen2.5-VL model, as ms-swift writes them: DPO (and SimPO, CPO, ORPO)
/// rows are a multimodal row (<see cref="MultimodalRow"/>: <c>"messages"</c> with <c>&lt;image&gt;</c> tags and
/// <c>"images"</c>) with <c>"rejected_response"</c> (the last assistant reply replaced), or with
/// <c>"rejected_messages"</c> (a whole conversation); <c>"rejected_images"</c> gives the rejected side its own images,
/// otherwise it uses the row's. KTO rows are a multimodal row with <c>"label"</c> (true: desirable). Each side is
/// encoded as an SFT row with images (<see cref="VisionDatasetEncoding.EncodeRow"/>); sides that name the same image
/// share one preprocessed copy.
/// </summary>
internal static class VisionPreferenceEncoding
{
    /// <summary>Chosen/rejected pairs of every row of <paramref name="files"/>; a pair is dropped when --max_length drops either side.</summary>
    public static IReadOnlyList<PreferencePair> EncodePairs(DatasetEncoder encoder, VisionInput input, IEnumerable<string> files, EncodingStats? stats = null)
    {
        var pairs = new List<PreferencePair>();
        foreach (var (file, line, where, row, images) in Rows(input, files))
        {
            var chosen = MultimodalRow.Parse(row, where);
            var rejected = Rejected(row, chosen, where);
            var chosenSample = VisionDatasetEncoding.EncodeRow(encoder, chosen, chosen.Images.Select(images).ToList(), input, file, line, stats);
            var rejectedSample = VisionDatasetEncoding.EncodeRow(encoder, rejected, rejected.Images.Select(images).ToList(), input, file, line);
            if (chosenSample is null || rejectedSample is null) continue;
            pairs.Add(new PreferencePair(chosenSample, rejectedSample));
        }
        return pairs;
    }

    /// <summary>KTO examples of every row of <paramref name="files"/>; rows --max_length drops are skipped.</summary>
    public static IReadOnlyList<KtoExample> EncodeKto(DatasetEncoder encoder, VisionInput input, IEnumerable<string> files, EncodingStats? stats = null)
    {
        var examples = new List<KtoExample>();
        foreach (var (file, line, where, row, images) in Rows(input, files))
        {
            var parsed = MultimodalRow.Parse(row, where);
            var desirable = Label(row, where);
            if (VisionDatasetEncoding.EncodeRow(encoder, parsed, parsed.Images.Select(images).ToList(), input, file, line, stats) is { } sample)
                examples.Add(new KtoExample(sample, desirable));
        }
        return examples;
    }

    /// <summary>Each non-blank line of each file as a JSON object, with a lookup that preprocesses each image reference of the row once.</summary>
    static IEnumerable<(string File, long Line, string Where, JsonElement Row, Func<string, ProcessedImage> Images)> Rows(VisionInput input, IEnumerable<string> files)
    {
        foreach (var file in files)
        {
            if (!File.Exists(file))
                throw new OspreyException($"--dataset {file} is not a file; a vision-language model trains on local .jsonl files of {{\"messages\": [...], \"images\": [...], \"rejected_response\": ...}} rows.");
            var dir = Path.GetDirectoryName(Path.GetFullPath(file));
            var lineNo = 0L;
            foreach (var text in File.ReadLines(file))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(text)) continue;
                var where = $"{file} line {lineNo}";
                JsonDocument doc;
                try { doc = JsonDocument.Parse(text); }
                catch (JsonException e) { throw new OspreyException($"{where}: not valid JSON ({e.Message})."); }
                using (doc)
                {
                    if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new OspreyException($"{where}: a row must be a JSON object with \"messages\".");
                    var seen = new Dictionary<string, ProcessedImage>(StringComparer.Ordinal);
                    ProcessedImage Image(string reference) =>
                        seen.TryGetValue(reference, out var done) ? done : seen[reference] = input.Process(ImageSource.Load(reference, dir, where));
                    yield return (file, lineNo, where, doc.RootElement, Image);
                }
            }
        }
    }

    /// <summary>The rejected side of a pair row (ms-swift: rejected_response, or rejected_messages; rejected_images or the row's images).</summary>
    static MultimodalRow Rejected(JsonElement row, MultimodalRow chosen, string where)
    {
        var hasImages = row.TryGetProperty("rejected_images", out var rejectedImages) && rejectedImages.ValueKind != JsonValueKind.Null;
        var images = hasImages ? rejectedImages : row.TryGetProperty("images", out var i) ? i : default;
        if (row.TryGetProperty("rejected_messages", out var messages) && messages.ValueKind != JsonValueKind.Null)
        {
            var rejected = new JsonObject { ["messages"] = JsonNode.Parse(messages.GetRawText()) };
            if (images.ValueKind != JsonValueKind.Undefined) rejected["images"] = JsonNode.Parse(images.GetRawText());
            using var doc = JsonDocument.Parse(rejected.ToJsonString());
            return MultimodalRow.Parse(doc.RootElement, $"{where} (rejected_messages{(hasImages ? ", rejected_images" : "")})");
        }
        if (!row.TryGetProperty("rejected_response", out var reply) || reply.ValueKind != JsonValueKind.String)
            throw new OspreyException($"{where}: the row has no rejected response; preference training needs \"rejected_response\" (the other reply to the last user message) or \"rejected_messages\", see docs/multimodal.md.");
        if (chosen.Messages.Count == 0 || chosen.Messages[^1].Role != "assistant")
            throw new OspreyException($"{where}: \"rejected_response\" replaces the last assistant message, but the row's messages do not end with one; end them with the chosen reply.");
        var list = chosen.Messages.Take(chosen.Messages.Count - 1).Append(("assistant", reply.GetString()!)).ToList();
        var imageList = hasImages ? ReferencesOf(rejectedImages, where) : chosen.Images;
        var tags = list.Sum(m => MultimodalRow.Count(m.Item2));
        if (tags != imageList.Count)
            throw new OspreyException($"{where} (rejected side): the messages have {tags} {MultimodalRow.ImageTag} tag(s) but \"{(hasImages ? "rejected_images" : "images")}\" lists {imageList.Count}; put one {MultimodalRow.ImageTag} where each image belongs.");
        return new MultimodalRow(list, imageList);
    }

    /// <summary>The image references of a rejected_images value: a path or data URL, or a list of them (or of {"path": ...}).</summary>
    static IReadOnlyList<string> ReferencesOf(JsonElement images, string where)
    {
        static string? One(JsonElement e) =>
            e.ValueKind == JsonValueKind.String ? e.GetString()
            : e.ValueKind == JsonValueKind.Object && e.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()
            : null;
        var list = images.ValueKind == JsonValueKind.Array ? images.EnumerateArray().Select(One).ToList() : [One(images)];
        if (list.Any(r => r is null))
            throw new OspreyException($"{where}: \"rejected_images\" must be a list of paths or data URLs (or {{\"path\": ...}}).");
        return list.Select(r => r!).ToList();
    }

    /// <summary>A KTO row's label: true/false (or 1/0, "true"/"false"), as for text rows.</summary>
    static bool Label(JsonElement row, string where)
    {
        if (!row.TryGetProperty("label", out var label) || label.ValueKind == JsonValueKind.Null)
            throw new OspreyException($"{where}: the row has no \"label\" (true for a desirable response, false for an undesirable one); KTO needs labelled rows.");
        return label.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number when label.TryGetInt32(out var n) && n is 0 or 1 => n == 1,
            JsonValueKind.String when label.GetString() is { } s && (s.Equals("true", StringComparison.OrdinalIgnoreCase) || s == "1") => true,
            JsonValueKind.String when label.GetString() is { } s && (s.Equals("false", StringComparison.OrdinalIgnoreCase) || s == "0") => false,
            _ => throw new OspreyException($"{where}: field \"label\" must be true or false, got {label.GetRawText()}."),
        };
    }
}
