using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Models.Qwen2Vl;
using Osprey.Runtime;

namespace Osprey.Inference;

/// <summary>
/// <c>osprey infer</c> for a vision-language model (Qwen2-VL, Qwen2.5-VL): a chat on stdin whose first question is
/// about <c>--images</c> and where each <c>&lt;image&gt;</c> tag of a question asks for an image path on the next line
/// (as ms-swift's infer does), or answers to a dataset of multimodal rows (<see cref="MultimodalRow"/>). Greedy decoding, or
/// sampled with the text chat's settings (<see cref="InferOptions.Sampling"/>, <see cref="ImageReplySampler"/>).
/// </summary>
public static class VisionInference
{
    /// <summary>Runs <paramref name="options"/> (the model folder is a vision-language model); returns the exit code.</summary>
    public static int Run(InferOptions options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var folder = options.ModelFolder;
        if (options.InputIds is not null) throw new OspreyException("--input_ids: a vision-language model takes text and --images; drop --input_ids.");
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "use a model folder with its tokenizer files.");
        var chat = ChatPrompt.Create(tokenizer, folder, options.Template);
        var processor = Qwen2VlImageProcessor.FromFolder(folder, options.ImageSizes);
        var cwd = Directory.GetCurrentDirectory();
        var given = options.Images.Select((r, i) => processor.Process(ImageSource.Load(r, cwd, $"--images {i + 1}"))).ToList();
        var rows = new List<(JsonObject Row, MultimodalRow Parsed, List<ImagePatches> Images)>();
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
                var decoded = parsed.Images.Select(r => ImageSource.Load(r, dir, where)).ToList();
                var imgs = decoded.Select(processor.Process).ToList();
                // Grounding rows: names and boxes written as the model reads them (ms-swift's --norm_bbox default).
                if (parsed.Objects is not null)
                    parsed = parsed.Grounded(decoded.Select(d => (d.Width, d.Height)).ToList(),
                        imgs.Select(p => (p.GridW * processor.PatchSize, p.GridH * processor.PatchSize)).ToList(), GroundingObjects.DefaultNormBbox(folder), where);
                rows.Add((node!.AsObject(), parsed, imgs));
            }
        }

        var runtime = TorchRuntime.Initialize(DeviceSpec.Parse(options.Model.Device), stderr);
        using var model = Qwen2VlModel.Load(folder, runtime.Device, DTypes.Resolve(options.Model.ResolvedDtype(), null, runtime.Device));
        // --adapters are merged into the weights in order, as the text path (MergedAdapters) does.
        foreach (var adapter in options.Adapters)
            stderr.WriteLine($"osprey: merged adapter {adapter} ({Tuners.Lora.PeftAdapter.MergeInto(model, adapter)} layers).");
        var sampling = options.Sampling(SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(folder)));
        var maxNew = sampling.MaxTokens ?? SamplingParams.TransformersMaxNewTokens;
        var stops = options.IgnoreEos ? [] : chat.StopIds(model.Spec.EosTokenIds);

        string Answer(IEnumerable<(string Role, string Text)> messages, List<ImagePatches> images)
        {
            var list = messages.ToList();
            if (options.System is not null && list.All(m => m.Role != "system")) list.Insert(0, ("system", options.System));
            var rendered = VisionPrompt.Expand(chat.Render(VisionPrompt.Messages(list)), images, model.MergeSize);
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

        // The chat (ImageChat): each <image> tag of a question asks for its image on the next input line.
        ImageChat.Run(stdin, stdout, stderr, given, (reference, where) => processor.Process(ImageSource.Load(reference, cwd, where)),
            (history, images) => Answer(history, images.Cast<ImagePatches>().ToList()));
        return 0;
    }
}
