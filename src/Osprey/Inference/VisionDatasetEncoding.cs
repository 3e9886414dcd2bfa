using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Templates;

namespace Osprey.Inference;

/// <summary>
/// Training samples from ms-swift's multimodal rows (<see cref="MultimodalRow"/>) for a vision-language model: each
/// image is preprocessed as for inference and the conversation is encoded with the chat template exactly as a text row
/// is (loss on the assistant turns). Qwen2-VL: each <c>&lt;image&gt;</c> tag becomes <c>&lt;|vision_start|&gt;</c>, one
/// <c>&lt;|image_pad|&gt;</c> per image token and <c>&lt;|vision_end|&gt;</c> in the text. LLaVA: each tag becomes an
/// image content part, the template renders one image token for it, and that token is then repeated once per feature
/// row of its image, as LlavaProcessor expands the rendered prompt. Image tokens never carry loss: their labels are
/// -100 even where a tag sits in an assistant message, since the model cannot be asked to predict pixels.
/// </summary>
internal static class VisionDatasetEncoding
{
    /// <summary>The samples of every row of <paramref name="files"/> (local .jsonl files), in file and line order;
    /// grounding rows' boxes are written as <paramref name="norm"/> says (<see cref="GroundingObjects.DefaultNormBbox"/>).</summary>
    public static IReadOnlyList<EncodedSample> Encode(DatasetEncoder encoder, VisionInput input, IEnumerable<string> files, EncodingStats? stats = null, NormBbox norm = NormBbox.Norm1000) =>
        EncodeEach(encoder, input, files, stats, norm).Where(r => r.Sample is not null).Select(r => r.Sample!).ToList();

    /// <summary>
    /// Every row of <paramref name="files"/> with its place, its JSON text and its sample (null where the encoder
    /// dropped the row), in file and line order.
    /// </summary>
    public static IEnumerable<(string Where, string Line, EncodedSample? Sample)> EncodeEach(DatasetEncoder encoder, VisionInput input, IEnumerable<string> files,
        EncodingStats? stats = null, NormBbox norm = NormBbox.Norm1000)
    {
        foreach (var file in files)
        {
            if (!File.Exists(file))
                throw new OspreyException($"--dataset {file} is not a file; a vision-language model trains on local .jsonl files of {{\"messages\": [...], \"images\": [...]}} rows.");
            var dir = Path.GetDirectoryName(Path.GetFullPath(file));
            var lineNo = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                var where = $"{file} line {lineNo}";
                MultimodalRow row;
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    row = MultimodalRow.Parse(doc.RootElement, where);
                }
                catch (JsonException e) { throw new OspreyException($"{where}: not valid JSON ({e.Message})."); }
                var decoded = row.Images.Select(r => ImageSource.Load(r, dir, where)).ToList();
                var images = decoded.Select(input.Process).ToList();
                if (row.Objects is not null)
                    row = row.Grounded(decoded.Select(d => (d.Width, d.Height)).ToList(),
                        images.Select(p => input.ResizedSize(p) ?? throw new OspreyException(
                            $"{where}: grounding rows (\"objects\") are written in Qwen-VL's box format, which this model's images have no place for; train them on a Qwen2-VL or Qwen2.5-VL model, or drop \"objects\".")).ToList(),
                        norm, where);
                yield return (where, line, EncodeRow(encoder, row, images, input, file, lineNo, stats));
            }
        }
    }

    /// <summary>
    /// ms-swift's --packing for image rows: the samples go into rows of at most <paramref name="maxLength"/> tokens
    /// exactly as text samples do (<see cref="SequencePacker.Pack"/>: position ids restart at 0 per sample, no loss
    /// across a boundary), and each pack carries its samples' images in the order their placeholders now appear; the
    /// model gives each sample its own M-RoPE positions (CausalLM.PackedImagePositions).
    /// </summary>
    public static IReadOnlyList<EncodedSample> Pack(IReadOnlyList<EncodedSample> samples, int maxLength) =>
        SequencePacker.Pack(samples.Select(s => (s.InputIds, s.Labels)).ToList(), maxLength)
            .Select(p => new EncodedSample(p.InputIds, p.Labels, p.PositionIds)
            {
                Images = p.SampleIndices.SelectMany(i => samples[i].Images ?? []).ToList(),
            })
            .ToList();

    /// <summary>One row with its preprocessed images; null when --truncation_strategy delete dropped it.</summary>
    public static EncodedSample? EncodeRow(DatasetEncoder encoder, MultimodalRow row, IReadOnlyList<ProcessedImage> images, VisionInput input, string file, long line, EncodingStats? stats = null)
    {
        var tokenizer = encoder.Tokenizer;
        var counts = images.Select(input.TokenCount).ToList();
        var pad = input.ImageTokenId;
        var pre = !input.ImagesAsContentParts;
        var padText = ImagePrompt.PadToken(input, tokenizer);
        var next = 0;
        var messages = new List<object?>();
        foreach (var (role, text) in row.Messages)
        {
            if (!pre)
            {
                messages.Add(InferenceDataset.Message(role, ImagePrompt.Content(text, input, tokenizer)));
                continue;
            }
            // Each tag takes the next image's token count; MultimodalRow.Parse has checked tags and images agree.
            var parts = text.Split(MultimodalRow.ImageTag);
            var sb = new System.Text.StringBuilder(parts[0]);
            for (var k = 1; k < parts.Length; k++)
            {
                var block = ImagePrompt.Block(input, tokenizer);
                sb.Append(block.Replace(padText, string.Concat(Enumerable.Repeat(padText, counts[next])), StringComparison.Ordinal)).Append(parts[k]);
                next++;
            }
            messages.Add(InferenceDataset.Message(role, sb.ToString()));
        }
        var where = $"{file} {DatasetRow.UnitOf(file)} {line}";
        var sample = encoder.Encode(new DatasetRow(file, line, DatasetFormat.Messages, new Conversation(messages), null), stats);
        if (sample is null) return null;
        var ids = new List<int>(sample.InputIds.Length);
        var labels = new List<int>(sample.InputIds.Length);
        var placeholders = 0;
        var seen = 0;
        var frame = new HashSet<int>();
        if (input.StartTokenId is int st) frame.Add(st);
        if (input.EndTokenId is int en) frame.Add(en);
        for (var i = 0; i < sample.InputIds.Length; i++)
        {
            var id = sample.InputIds[i];
            // Post-expansion (LLaVA): the template's one image token per image becomes the image's count of them.
            var repeat = id == pad && !pre && seen < counts.Count ? counts[seen++] : 1;
            for (var r = 0; r < repeat; r++)
            {
                ids.Add(id);
                labels.Add(id == pad || frame.Contains(id) ? EncodedSample.IgnoreIndex : sample.Labels[i]);
                if (id == pad) placeholders++;
            }
        }
        var expected = counts.Sum();
        if (placeholders != expected)
            throw new OspreyException($"{where}: the encoded row keeps {placeholders} of its {expected} image tokens, so --max_length cut into an image (or the chat template dropped an image); raise --max_length, lower --max_pixels, or use --truncation_strategy delete.");
        if (!pre && encoder.Options.MaxLength is int max && ids.Count > max)
        {
            // The images' tokens came after the encoder's length check: apply it to the expanded row.
            if (encoder.Options.Truncation == TruncationStrategy.Delete) return null;
            throw new OspreyException($"{where}: with its images' {expected} tokens the row has {ids.Count} tokens, more than --max_length {max}; raise --max_length or use --truncation_strategy delete.");
        }
        return new EncodedSample(ids.ToArray(), labels.ToArray()) { Images = images };
    }
}
