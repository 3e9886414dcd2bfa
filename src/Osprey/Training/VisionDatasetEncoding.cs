using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Inference;
using Osprey.Templates;

namespace Osprey.Training;

/// <summary>
/// Training samples from ms-swift's multimodal rows (<see cref="MultimodalRow"/>) for a Qwen2-VL / Qwen2.5-VL model:
/// each image is preprocessed as for inference, each <c>&lt;image&gt;</c> tag becomes
/// <c>&lt;|vision_start|&gt;</c>, one <c>&lt;|image_pad|&gt;</c> per image token (patches over merge_size²) and
/// <c>&lt;|vision_end|&gt;</c>, and the conversation is encoded with the chat template exactly as a text row is (loss
/// on the assistant turns). Image tokens never carry loss: their labels are -100 even where a tag sits in an
/// assistant message, since the model cannot be asked to predict pixels.
/// </summary>
internal static class VisionDatasetEncoding
{
    /// <summary>The samples of every row of <paramref name="files"/> (local .jsonl files), in file and line order;
    /// grounding rows' boxes are written as <paramref name="norm"/> says (<see cref="GroundingObjects.DefaultNormBbox"/>).</summary>
    public static IReadOnlyList<EncodedSample> Encode(DatasetEncoder encoder, Qwen2VlImageProcessor processor, IEnumerable<string> files, EncodingStats? stats = null, NormBbox norm = NormBbox.Norm1000)
    {
        var samples = new List<EncodedSample>();
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
                var images = decoded.Select(processor.Process).ToList();
                if (row.Objects is not null)
                    row = row.Grounded(decoded.Select(d => (d.Width, d.Height)).ToList(),
                        images.Select(p => (p.GridW * processor.PatchSize, p.GridH * processor.PatchSize)).ToList(), norm, where);
                if (EncodeRow(encoder, row, images, processor.MergeSize, file, lineNo, stats) is { } sample) samples.Add(sample);
            }
        }
        return samples;
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

    /// <summary>One row with its preprocessed images (<paramref name="mergeSize"/>: patches merged per side into one
    /// token, the processor's and the model's); null when --truncation_strategy delete dropped it.</summary>
    public static EncodedSample? EncodeRow(DatasetEncoder encoder, MultimodalRow row, IReadOnlyList<ImagePatches> images, int mergeSize, string file, long line, EncodingStats? stats = null)
    {
        var tokenizer = encoder.Tokenizer;
        int Id(string token) => tokenizer.TokenToId(token) ?? throw new OspreyException($"the tokenizer has no {token} token, which Qwen2-VL prompts need; use the model's own tokenizer files.");
        int pad = Id(VisionPrompt.ImagePad), start = Id("<|vision_start|>"), end = Id("<|vision_end|>");
        var next = 0;
        var messages = new List<object?>();
        foreach (var (role, text) in row.Messages)
        {
            // Each tag takes the next image's token count; MultimodalRow.Parse has checked tags and images agree.
            var parts = text.Split(MultimodalRow.ImageTag);
            var sb = new System.Text.StringBuilder(parts[0]);
            for (var k = 1; k < parts.Length; k++)
            {
                sb.Append("<|vision_start|>");
                for (var i = 0; i < images[next].TokenCount(mergeSize); i++) sb.Append(VisionPrompt.ImagePad);
                sb.Append("<|vision_end|>").Append(parts[k]);
                next++;
            }
            messages.Add(InferenceDataset.Message(role, sb.ToString()));
        }
        var where = $"{file} {DatasetRow.UnitOf(file)} {line}";
        var sample = encoder.Encode(new DatasetRow(file, line, DatasetFormat.Messages, new Conversation(messages), null), stats);
        if (sample is null) return null;
        var labels = (int[])sample.Labels.Clone();
        var placeholders = 0;
        for (var i = 0; i < sample.InputIds.Length; i++)
        {
            var id = sample.InputIds[i];
            if (id == pad) placeholders++;
            if (id == pad || id == start || id == end) labels[i] = EncodedSample.IgnoreIndex;
        }
        var expected = images.Sum(im => im.TokenCount(mergeSize));
        if (placeholders != expected)
            throw new OspreyException($"{where}: the encoded row keeps {placeholders} of its {expected} image tokens, so --max_length cut into an image; raise --max_length, lower --max_pixels, or use --truncation_strategy delete.");
        return new EncodedSample(sample.InputIds, labels) { Images = images };
    }
}
