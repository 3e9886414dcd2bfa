using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Inference;

/// <summary>
/// What <c>osprey infer</c> does, in its flags' terms: a chat on stdin (neither <see cref="ValDatasets"/> nor
/// <see cref="InputIds"/>), answers to a dataset, or generation from token ids. Null generation settings come from
/// the model's generation_config.json (see <see cref="Sampling"/>).
/// </summary>
// ms-swift's generation, merge and inference arguments that do not apply here (docs/ms-swift-compat.md).
[NoEffectFlagsFrom(typeof(InferenceEngineFlags))]
[NoEffectFlagsFrom(typeof(OneProcessEngineFlags))]
[NoEffectFlag("num_beams", "Osprey decodes one sequence per prompt (no beam search)")]
[NoEffectFlag("stop_words", "infer stops at the model's end-of-sequence tokens; the deploy API takes stop strings")]
[NoEffectFlag("logprobs", Logprobs)]
[NoEffectFlag("top_logprobs", Logprobs)]
[NoEffectFlag("merge_lora", "infer merges --adapters into the weights at load already")]
[NoEffectFlag("safe_serialization", NoWeights)]
[NoEffectFlag("max_shard_size", NoWeights)]
[NoEffectFlag("write_batch_size", "rows are written as they finish")]
[NoEffectFlag("metric", "infer does not score the responses")]
[NoEffectFlag("val_dataset_sample", "infer answers every row of --val_dataset")]
[NoEffectFlag("reranker_use_activation", "Osprey has no reranker models")]
[NoEffectFlag("max_model_len", "the context is config.json's max_position_embeddings")]
[NoEffectFlag("max_length", "infer does not truncate prompts")]
public sealed record InferOptions
{
    private const string Logprobs = "infer prints text; the deploy API returns logprobs";
    private const string NoWeights = "infer writes no weights";

    /// <summary>--model and the device flags; the CLI resolves them into <see cref="ModelFolder"/>.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>The model folder (resolved: a local folder).</summary>
    public string ModelFolder { get; init; } = "";
    /// <summary>--images: pictures the first question of the chat is about (vision-language models).</summary>
    [Option("images", "Image files or data: URLs the first chat question is about (Qwen2-VL, Qwen2.5-VL, LLaVA, LLaVA-NeXT).", Placeholder = "FILE...")]
    public IReadOnlyList<string> Images { get; init; } = [];

    /// <summary>--max_pixels / --min_pixels for vision-language models.</summary>
    [OptionGroup]
    public Osprey.Images.ImageOptions ImageSizes { get; init; } = new();

    /// <summary>--val_dataset: JSON-lines (or .json array) files whose rows to answer.</summary>
    [Option("val_dataset", "Answer every row of these JSON-lines files ({\"messages\": [...]} or {\"query\": ...}) instead of chatting on stdin.", Placeholder = "FILE...")]
    public IReadOnlyList<string> ValDatasets { get; init; } = [];
    /// <summary>--result_path: where the answered rows go (null: stdout).</summary>
    [Option("result_path", "Write the rows with their \"response\" to FILE (default: stdout).", Placeholder = "FILE")]
    public string? ResultPath { get; init; }
    /// <summary>--max_batch_size: rows per left-padded batched generation (null: 1).</summary>
    [Option("max_batch_size", "Rows generated together as one left-padded batch.", DefaultText = "1")]
    public int? MaxBatchSize { get; init; }
    /// <summary>--system: the system message for rows (and a chat) without one.</summary>
    [Option("system", "System message for rows without one (a row's own wins, as in ms-swift).", Placeholder = "TEXT")]
    public string? System { get; init; }
    /// <summary>--template: a Jinja file, a tokenizer's named template or an ms-swift name; null: the tokenizer's own.</summary>
    [Option("template", "Chat template: a Jinja file, a named template of the tokenizer, or an ms-swift name (chatml, qwen, qwen3, llama3, llama2, mistral, gemma, phi3, deepseek, default).", Placeholder = "FILE|NAME")]
    public string? Template { get; init; }
    /// <summary>--input_ids: prompts as token ids, run as one batch.</summary>
    public IReadOnlyList<IReadOnlyList<int>>? InputIds { get; init; }
    /// <summary>--save_logits: with <see cref="InputIds"/>, write the prompts' logits here instead of generating.</summary>
    [Option("save_logits", "With --input_ids: write the prompts' logits (float32) and ids to FILE (safetensors) instead of generating; prompts must have equal length.", Placeholder = "FILE")]
    public string? SaveLogits { get; init; }
    /// <summary>--max_new_tokens.</summary>
    [Option("max_new_tokens", "Tokens to generate at most.", DefaultText = "generation_config.json, else 256")]
    public int? MaxNewTokens { get; init; }
    /// <summary>--do_sample (null: generation_config.json's, or sampling when a positive temperature is given).</summary>
    [Option("do_sample", "Sample instead of greedy decoding.", DefaultText = "generation_config.json, else false")]
    public bool? DoSample { get; init; }
    /// <summary>--temperature.</summary>
    [Option("temperature", "Sampling temperature; 0 means greedy.")]
    public double? Temperature { get; init; }
    /// <summary>--top_k.</summary>
    [Option("top_k", "Keep the N most likely tokens when sampling (0 = all).")]
    public int? TopK { get; init; }
    /// <summary>--top_p.</summary>
    [Option("top_p", "Nucleus sampling threshold in (0, 1].", Placeholder = "P")]
    public double? TopP { get; init; }
    /// <summary>--repetition_penalty.</summary>
    [Option("repetition_penalty", "Penalise tokens already seen (1 = off).")]
    public double? RepetitionPenalty { get; init; }
    /// <summary>--seed.</summary>
    [Option("seed", "Seed for sampling (default 42).")]
    public long Seed { get; init; } = 42;
    /// <summary>--ignore_eos: keep generating past end-of-sequence tokens.</summary>
    [Option("ignore_eos", "Keep generating past end-of-sequence tokens.")]
    public bool IgnoreEos { get; init; }
    /// <summary>--stream (null: on in the chat, off otherwise).</summary>
    [Option("stream", "Print the reply as it is generated.", DefaultText = "true in the chat, else false")]
    public bool? Stream { get; init; }
    /// <summary>--infer_backend: only the built-in <c>pt</c> exists; the others are Python-only.</summary>
    [Option("infer_backend", "Inference engine: Osprey's own 'pt'; vllm, sglang and lmdeploy run it too, with a notice.", Placeholder = "pt")]
    public string InferBackend { get; init; } = "pt";
    /// <summary>--adapters: LoRA adapters merged into the model at load (see <see cref="AdapterBaseModel"/>).</summary>
    [Option("adapters", "LoRA adapters (checkpoint-N folders or PEFT adapters) merged into the model at load; without --model the base model and template come from the adapter's args.json.", Placeholder = "DIR...", Aliases = ["ckpt_dir"])]
    public IReadOnlyList<string> Adapters { get; init; } = [];

    /// <summary>The model (or an adapter) is a reward model: it scores rows or prompts instead of generating.</summary>
    public bool RewardModel { get; init; }

    /// <summary>Which of the three ways these options ask for.</summary>
    public InferMode Mode => InputIds is not null ? InferMode.Ids : ValDatasets.Count > 0 ? InferMode.Dataset : InferMode.Chat;

    /// <summary>
    /// What <c>--infer_backend</c> <paramref name="backend"/> means here: null for Osprey's own <c>pt</c>; for ms-swift's
    /// Python engines (vllm, sglang, lmdeploy) the one-line notice that Osprey's engine runs instead, so their scripts run
    /// unchanged.
    /// </summary>
    /// <exception cref="OspreyException">Any other name.</exception>
    public static string? BackendNotice(string backend) => backend switch
    {
        "pt" => null,
        "vllm" or "sglang" or "lmdeploy" => $"osprey: --infer_backend {backend} runs Osprey's own engine here; {backend} is a Python engine.",
        _ => throw new OspreyException($"--infer_backend {backend} is unknown; Osprey's engine is 'pt' (ms-swift's vllm, sglang and lmdeploy run it too), so pass --infer_backend pt or drop the flag."),
    };

    /// <summary>Checks the combinations of flags once, before anything loads; throws an <see cref="OspreyException"/> naming the flags.</summary>
    public void Validate()
    {
        BackendNotice(InferBackend);
        if (SaveLogits is not null && InputIds is null) throw new OspreyException("--save_logits needs the prompts as --input_ids.");
        if (InputIds is not null && ValDatasets.Count > 0) throw new OspreyException("--input_ids and --val_dataset both give the prompts; use one.");
        if (MaxBatchSize is < 1) throw new OspreyException($"--max_batch_size must be 1 or more, got {MaxBatchSize}.");
        if (Mode != InferMode.Dataset)
        {
            var stray = new[] { ("result_path", ResultPath is not null), ("max_batch_size", MaxBatchSize is not null) }.FirstOrDefault(f => f.Item2).Item1;
            if (stray is not null) throw new OspreyException($"--{stray} applies to --val_dataset; add --val_dataset FILE or drop --{stray}.");
        }
        if (Mode == InferMode.Ids && (System ?? Template) is not null)
            throw new OspreyException($"--{(System is not null ? "system" : "template")} shapes a chat prompt, but --input_ids gives the prompt as token ids; drop one of them.");
        if (Mode == InferMode.Dataset && Stream == true)
        {
            if (ResultPath is null) throw new OspreyException("--stream with --val_dataset prints the replies as they come, so the records need --result_path FILE.");
            if (MaxBatchSize is > 1) throw new OspreyException("--stream prints one reply at a time; drop --stream or --max_batch_size.");
        }
    }

    /// <summary>
    /// The sampling settings: these options over <paramref name="modelDefaults"/> (<see cref="SamplingParams.FromModel"/>).
    /// A positive temperature alone turns sampling on.
    /// </summary>
    public SamplingParams Sampling(SamplingParams modelDefaults) => modelDefaults with
    {
        MaxTokens = MaxNewTokens ?? modelDefaults.MaxTokens,
        DoSample = DoSample ?? (Temperature is > 0 || modelDefaults.DoSample),
        Temperature = Temperature ?? modelDefaults.Temperature,
        TopK = TopK ?? modelDefaults.TopK,
        TopP = TopP ?? modelDefaults.TopP,
        RepetitionPenalty = RepetitionPenalty ?? modelDefaults.RepetitionPenalty,
        Seed = Seed,
    };
}
