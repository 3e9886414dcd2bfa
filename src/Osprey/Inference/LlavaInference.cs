using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Models.Llava;
using Osprey.Runtime;

namespace Osprey.Inference;

/// <summary>
/// <c>osprey infer</c> for LLaVA and LLaVA-NeXT: a chat on stdin whose first question is about <c>--images</c> and where
/// each <c>&lt;image&gt;</c> tag of a question asks for an image on the next line (<see cref="ImageChat"/>), or
/// answers to a dataset of multimodal rows (<see cref="MultimodalRow"/>). Each user message goes to the chat template
/// as content parts (text, image, text, ...) split at its <c>&lt;image&gt;</c> tags, as transformers' processor
/// receives them, so the checkpoint's own template decides where the image token goes; the k-th image token of the
/// rendered prompt is then repeated once per feature row of image k, as LlavaProcessor / LlavaNextProcessor do.
/// Greedy decoding, or sampled with the text chat's settings (<see cref="InferOptions.Sampling"/>,
/// <see cref="ImageReplySampler"/>).
/// </summary>
public static class LlavaInference
{
    /// <summary>Runs <paramref name="options"/> (the model folder is a llava or llava_next model); returns the exit code.</summary>
    public static int Run(InferOptions options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var folder = options.ModelFolder;
        if (options.InputIds is not null) throw new OspreyException("--input_ids: a vision-language model takes text and --images; drop --input_ids.");
        if (options.ImageSizes.MaxPixels is not null || options.ImageSizes.MinPixels is not null)
            throw new OspreyException("--max_pixels/--min_pixels: LLaVA crops every image to the vision tower's fixed size (preprocessor_config.json); drop them.");
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "use a model folder with its tokenizer files.");
        var chat = ChatPrompt.Create(tokenizer, folder, options.Template);
        var process = LlavaModel.ImageProcessor(folder);
        var cwd = Directory.GetCurrentDirectory();
        var given = options.Images.Select((r, i) => process(ImageSource.Load(r, cwd, $"--images {i + 1}"))).ToList();
        var rows = new List<(JsonObject Row, MultimodalRow Parsed, List<ImageTiles> Images)>();
        foreach (var file in options.ValDatasets)
        {
            var lineNo = 0;
            foreach (var line in File.ReadLines(file))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                var where = $"{file} line {lineNo}";
                JsonNode? node;
                try { node = JsonNode.Parse(line); }
                catch (JsonException e) { throw new OspreyException($"{where}: not valid JSON ({e.Message})."); }
                using var doc = JsonDocument.Parse(line);
                var parsed = MultimodalRow.Parse(doc.RootElement, where);
                var dir = Path.GetDirectoryName(Path.GetFullPath(file));
                rows.Add((node!.AsObject(), parsed, parsed.Images.Select(r => process(ImageSource.Load(r, dir, where))).ToList()));
            }
        }

        var runtime = TorchRuntime.Initialize(DeviceSpec.Parse(options.Model.Device), stderr);
        using var model = LlavaModel.Load(folder, runtime.Device, DTypes.Resolve(options.Model.ResolvedDtype(), null, runtime.Device));
        // --adapters are merged into the weights in order, as the text path (MergedAdapters) does.
        foreach (var adapter in options.Adapters)
            stderr.WriteLine($"osprey: merged adapter {adapter} ({Tuners.Lora.PeftAdapter.MergeInto(model, adapter)} layers).");
        var imageToken = tokenizer.IdToToken(model.ImageTokenId)
            ?? throw new OspreyException($"{folder}: the tokenizer has no token for config.json's image token id {model.ImageTokenId}; the tokenizer and config do not match.");
        var sampling = options.Sampling(SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(folder)));
        var maxNew = sampling.MaxTokens ?? SamplingParams.TransformersMaxNewTokens;
        var stops = options.IgnoreEos ? [] : chat.StopIds(model.Spec.EosTokenIds);

        string Answer(IEnumerable<(string Role, string Text)> messages, List<ImageTiles> images)
        {
            var list = messages.ToList();
            if (options.System is not null && list.All(m => m.Role != "system")) list.Insert(0, ("system", options.System));
            var rendered = Expand(chat.Render(Messages(list)), imageToken, images.Select(model.TokenCount).ToList());
            var ids = chat.EncodeRendered(rendered);
            using var sampler = ImageReplySampler.For(sampling, ids, model.Spec.VocabSize, model.Device);
            var reply = model.Generate(ids, images, maxNew, options.IgnoreEos ? null : stops.ToArray(), sampler is null ? null : sampler.Pick);
            return chat.DecodeReply(reply, stops);
        }

        if (options.ValDatasets.Count > 0)
        {
            using var output = options.ResultPath is null ? null : new StreamWriter(options.ResultPath + ".tmp");
            foreach (var (row, parsed, imgs) in rows)
            {
                // A final assistant message is the reference answer, not part of the prompt (as for text rows).
                var prompt = parsed.Messages.Count > 0 && parsed.Messages[^1].Role == "assistant" ? parsed.Messages.Take(parsed.Messages.Count - 1) : parsed.Messages;
                row["response"] = Answer(prompt, imgs);
                (output ?? stdout).WriteLine(row.ToJsonString());
            }
            if (output is not null)
            {
                output.Close();
                File.Move(options.ResultPath! + ".tmp", options.ResultPath!, overwrite: true);
            }
            return 0;
        }

        // The chat (ImageChat, as for Qwen2-VL): each <image> tag of a question asks for its image on the next input line.
        ImageChat.Run(stdin, stdout, stderr, given, (reference, where) => process(ImageSource.Load(reference, cwd, where)),
            (history, images) => Answer(history, images.Cast<ImageTiles>().ToList()));
        return 0;
    }

    /// <summary>Template messages: a message with <c>&lt;image&gt;</c> tags becomes content parts (text and image, in
    /// order); one without stays a string.</summary>
    public static IReadOnlyList<object?> Messages(IEnumerable<(string Role, string Text)> messages) =>
        messages.Select(m => (object?)InferenceDataset.Message(m.Role, Content(m.Text))).ToList();

    static object Content(string text)
    {
        if (!text.Contains(MultimodalRow.ImageTag, StringComparison.Ordinal)) return text;
        var parts = new List<object?>();
        var pieces = text.Split(MultimodalRow.ImageTag);
        for (var i = 0; i < pieces.Length; i++)
        {
            if (i > 0) parts.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = "image" });
            if (pieces[i].Length > 0) parts.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = "text", ["text"] = pieces[i] });
        }
        return parts;
    }

    /// <summary>Repeats the k-th <paramref name="imageToken"/> of <paramref name="rendered"/> <paramref name="counts"/>[k] times.</summary>
    public static string Expand(string rendered, string imageToken, IReadOnlyList<int> counts)
    {
        var parts = rendered.Split(imageToken);
        if (parts.Length - 1 != counts.Count)
            throw new OspreyException($"the rendered prompt has {parts.Length - 1} image token(s) '{imageToken}' for {counts.Count} image(s); the chat template must render one image token per image part.");
        var sb = new System.Text.StringBuilder(parts[0]);
        for (var k = 0; k < counts.Count; k++)
        {
            for (var i = 0; i < counts[k]; i++) sb.Append(imageToken);
            sb.Append(parts[k + 1]);
        }
        return sb.ToString();
    }
}
