using Osprey.Models;


namespace Osprey.Inference;

/// <summary>
/// <c>osprey infer</c> as one library call: a chat on a text reader, answers to a dataset, or generation from token
/// ids, with what it prints going to the given writers. Prompts and rows are read and encoded before the weights
/// load, so their mistakes show first.
/// </summary>
public static class Infer
{
    /// <summary>
    /// Runs <paramref name="options"/> (already <see cref="InferOptions.Validate">validated</see>);
    /// <paramref name="loadModel"/> loads the model (with any adapters) when it is needed. Returns the exit code.
    /// </summary>
    public static int Run(InferOptions options, Func<CausalLM> loadModel, TextReader stdin, TextWriter stdout, TextWriter stderr, bool stdinIsTerminal = false)
    {
        var folder = options.ModelFolder;
        var mode = options.Mode;
        // A vision-language reward model scores image rows with the training path's own encoding.
        if (options.RewardModel && Models.VisionInput.Read(folder, options.ImageSizes) is { } vision) return ScoreImageRows(options, vision, loadModel, stdout, stderr);
        // Vision-language models (Qwen2-VL, Qwen2.5-VL) have their own path: images, M-RoPE, greedy decoding.
        if (Osprey.Models.Qwen2Vl.Qwen2VlModel.IsVisionLanguage(folder)) return VisionInference.Run(options, stdin, stdout, stderr);
        if (Osprey.Models.Llava.LlavaModel.IsLlava(folder)) return LlavaInference.Run(options, stdin, stdout, stderr);
        if (options.Images.Count > 0) throw new OspreyException($"--images: {folder} is not a vision-language model (Qwen2-VL, Qwen2.5-VL, LLaVA or LLaVA-NeXT); drop --images.");
        if (options.RewardModel)
        {
            if (mode == InferMode.Chat) throw new OspreyException($"{folder} is a reward model (it scores, it does not chat); give --val_dataset FILE or --input_ids IDS.");
            if (options.SaveLogits is not null) throw new OspreyException("--save_logits needs next-token logits, which a reward model (a score head) does not give.");
            if (options.Template is not null && mode == InferMode.Dataset) throw new OspreyException("--template: a reward model's rows are rendered with the tokenizer's own chat template; drop --template.");
        }
        SamplingParams Sampling(CausalLM model) => options.Sampling(SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(folder)));

        if (mode == InferMode.Ids)
        {
            var prompts = options.InputIds!;
            if (options.Stream == true && prompts.Count > 1) throw new OspreyException("--stream prints one prompt's tokens as they come; give one prompt or drop --stream.");
            using var model = loadModel();
            if (model.IsRewardModel) return TokenIdInference.ScoreAll(model, prompts, stdout);
            if (options.SaveLogits is not null) return TokenIdInference.SaveLogits(model, prompts, options.SaveLogits, stdout);
            var o = Sampling(model);
            if (options.IgnoreEos) o = o with { StopTokenIds = [] };
            return TokenIdInference.Generate(new TokenGenerator(model), prompts, o, options.Stream == true, stdout, stderr);
        }

        // Text: the tokenizer and the rows first, so their mistakes show before the weights load.
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "give the prompt as token ids with --input_ids, or use a model folder with its tokenizer files.");
        var chat = ChatPrompt.Create(tokenizer, folder, options.Template);
        SamplingParams TextSampling(CausalLM model)
        {
            var o = Sampling(model);
            return o with { StopTokenIds = options.IgnoreEos ? [] : chat.StopIds(o.StopTokenIds) };
        }
        if (mode == InferMode.Dataset)
        {
            var rows = options.ValDatasets.SelectMany(d => InferenceDataset.Read(d, options.System)).ToList();
            if (options.RewardModel)
            {
                var scored = rows.Select(r => InferenceDataset.EncodeScored(chat, r, options.System)).ToList();
                using var rewardModel = loadModel();
                return DatasetInference.Score(rewardModel, rows, scored, options.ResultPath, stdout, stderr);
            }
            var encoded = rows.Select(r => InferenceDataset.Encode(chat, r)).ToList();
            using var model = loadModel();
            return DatasetInference.Generate(new TokenGenerator(model), chat, rows, encoded, TextSampling(model),
                options.MaxBatchSize ?? 1, options.Stream == true, options.ResultPath, stdout, stderr);
        }
        using (var model = loadModel())
        {
            var session = new ChatSession(new TokenGenerator(model), chat, TextSampling(model), options.System);
            return session.Run(stdin, stdout, stderr, options.Stream ?? true, echo: !stdinIsTerminal);
        }
    }

    /// <summary>
    /// A vision-language reward model over <c>--val_dataset</c> rows with images: each row encoded as training encodes it
    /// (the whole conversation, its images in place) and scored at its last token; the rows go out with "score" added.
    /// </summary>
    static int ScoreImageRows(InferOptions options, Models.VisionInput vision, Func<CausalLM> loadModel, TextWriter stdout, TextWriter stderr)
    {
        var folder = options.ModelFolder;
        if (options.Mode != InferMode.Dataset)
            throw new OspreyException($"{folder} is a reward model (it scores, it does not chat); give --val_dataset FILE.jsonl with rows of {{\"messages\": [...], \"images\": [...]}}.");
        if (options.Images.Count > 0) throw new OspreyException("--images: a reward model scores the images of each --val_dataset row; drop --images.");
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "use a model folder with its tokenizer files.");
        var encoder = new Datasets.DatasetEncoder(tokenizer);
        var rows = new List<(System.Text.Json.Nodes.JsonObject Record, Datasets.EncodedSample Sample)>();
        foreach (var (where, line, sample) in VisionDatasetEncoding.EncodeEach(encoder, vision, options.ValDatasets, norm: Datasets.GroundingObjects.DefaultNormBbox(folder)))
            rows.Add(((System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(line)!,
                sample ?? throw new OspreyException($"{where}: the row gives nothing to score (no assistant reply, or it was cut to nothing); end each row with the assistant's reply.")));
        using var model = loadModel();
        var lines = new System.Text.StringBuilder();
        foreach (var (record, sample) in rows)
        {
            float[] values;
            using (TorchSharp.torch.NewDisposeScope())
            using (TorchSharp.torch.no_grad())
            {
                var ids = TorchSharp.torch.tensor(sample.InputIds.Select(i => (long)i).ToArray(), [1, sample.Length], device: model.Device);
                values = model.Scores(ids, null, sample.Images).cpu().data<float>().ToArray();
            }
            record["score"] = values.Length == 1 ? System.Text.Json.Nodes.JsonValue.Create((double)values[0])
                : new System.Text.Json.Nodes.JsonArray(values.Select(v => (System.Text.Json.Nodes.JsonNode?)System.Text.Json.Nodes.JsonValue.Create((double)v)).ToArray());
            lines.Append(Io.JsonText.Of(record)).Append('\n');
        }
        return DatasetInference.WriteScored(lines.ToString(), rows.Count, options.ResultPath, stdout, stderr);
    }
}
