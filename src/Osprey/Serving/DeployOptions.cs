using Osprey.Hub;
using Osprey.Inference;
using Osprey.Options;
using Osprey.Tuners.Lora;

namespace Osprey.Serving;

/// <summary>
/// The flags of <c>osprey deploy</c> and <c>osprey app</c> (ms-swift's names): the model, the adapters clients select,
/// where to listen and the engine limits. <see cref="Validate"/> checks them once; <see cref="ToServeOptions"/> is what
/// <see cref="ServedModel.Load"/> takes.
/// </summary>
// ms-swift's inference, deployment and app arguments that do not apply to a server (docs/ms-swift-compat.md).
[NoEffectFlagsFrom(typeof(InferenceEngineFlags))]
[NoEffectFlag("max_new_tokens", PerRequest)]
[NoEffectFlag("temperature", PerRequest)]
[NoEffectFlag("top_k", PerRequest)]
[NoEffectFlag("top_p", PerRequest)]
[NoEffectFlag("repetition_penalty", PerRequest)]
[NoEffectFlag("num_beams", PerRequest)]
[NoEffectFlag("stream", PerRequest)]
[NoEffectFlag("stop_words", PerRequest)]
[NoEffectFlag("logprobs", PerRequest)]
[NoEffectFlag("top_logprobs", PerRequest)]
[NoEffectFlag("seed", PerRequest)]
[NoEffectFlag("system", "the request's messages carry the system prompt")]
[NoEffectFlag("max_length", "--max_model_len limits prompt plus output")]
[NoEffectFlag("result_path", NoDataset)]
[NoEffectFlag("write_batch_size", NoDataset)]
[NoEffectFlag("metric", NoDataset)]
[NoEffectFlag("val_dataset_sample", NoDataset)]
[NoEffectFlag("merge_lora", "adapters are applied per request, so merging is not needed")]
[NoEffectFlag("safe_serialization", NoWeights)]
[NoEffectFlag("max_shard_size", NoWeights)]
[NoEffectFlag("reranker_use_activation", "Osprey has no reranker models")]
[NoEffectFlag("owned_by", "the model list reports Osprey's fixed owner")]
[NoEffectFlag("verbose", "Osprey logs one line per request")]
[NoEffectFlag("log_interval", "Osprey has no periodic throughput log")]
[NoEffectFlag("max_logprobs", "the API's own limit on top_logprobs applies")]
[NoEffectFlag("share", "the app has no public share links; use --host 0.0.0.0")]
[NoEffectFlag("lang", "the chat page is in English")]
[NoEffectFlag("base_url", "the app serves the model it loads")]
[NoEffectFlag("studio_title", "the chat page shows the served model's name")]
[NoEffectFlag("is_multimodal", "a Qwen2-VL, Qwen2.5-VL, LLaVA or LLaVA-NeXT model folder takes images by itself")]
public sealed record DeployOptions
{
    private const string PerRequest = "each request carries its own sampling settings; unset ones come from generation_config.json";
    private const string NoDataset = "deploy answers requests, not a dataset";
    private const string NoWeights = "deploy writes no weights";

    /// <summary>The port <c>osprey deploy</c> listens on when --port is not given.</summary>
    public const int DeployPort = 8000;

    /// <summary>The port <c>osprey app</c> listens on when --port is not given (Gradio's, as ms-swift's app).</summary>
    public const int AppPort = 7860;

    /// <summary>--model and the device flags.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>--adapters: NAME=DIR or DIR (named after the folder).</summary>
    [Option("adapters", "LoRA adapters clients select by \"model\": NAME (default: the folder's name). Without --model the base model comes from the first adapter's args.json.", Placeholder = "[NAME=]DIR...", Aliases = ["ckpt_dir"])]
    public IReadOnlyList<string> Adapters { get; init; } = [];

    /// <summary>--host.</summary>
    [Option("host", "Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).", Placeholder = "H", Aliases = ["server_name"])]
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>--port; null: <see cref="DeployPort"/> or <see cref="AppPort"/> by verb (see <see cref="PortFor"/>).</summary>
    [Option("port", "Port to listen on (0: a free one).", DefaultText = "8000 for deploy, 7860 for app", Aliases = ["server_port"])]
    public int? Port { get; init; }

    /// <summary>--api_key.</summary>
    [Option("api_key", "Require \"Authorization: Bearer KEY\" on every request.", Placeholder = "KEY")]
    public string? ApiKey { get; init; }

    /// <summary>--served_model_name; null: the model folder's name.</summary>
    [Option("served_model_name", "Name clients use for the base model (default: the model folder's name).", Placeholder = "NAME")]
    public string? ServedModelName { get; init; }

    /// <summary>--max_batch_size; null: <see cref="EngineOptions.MaxBatchSize"/>'s default.</summary>
    [Option("max_batch_size", "Requests decoded together at most (default 32).")]
    public int? MaxBatchSize { get; init; }

    /// <summary>--max_model_len; null: the model's context, at most 8192.</summary>
    [Option("max_model_len", "Prompt plus output tokens per request at most (default: the model's context, at most 8192).")]
    public int? MaxModelLen { get; init; }

    /// <summary>--tensor_parallel_size.</summary>
    [OptionGroup]
    public TensorParallelOptions TensorParallel { get; init; } = new();

    /// <summary>--enforce_eager: no CUDA graphs.</summary>
    [Option("enforce_eager", "On CUDA, launch every kernel of a decode step instead of replaying CUDA graphs (default false; graphs make small batches several times faster).")]
    public bool EnforceEager { get; init; }

    /// <summary>--template; null: the tokenizer's own (or the adapter's).</summary>
    [Option("template", "Chat template: a Jinja file, a named template of the tokenizer, or an ms-swift name.", Placeholder = "FILE|NAME")]
    public string? Template { get; init; }

    /// <summary>--infer_backend: only <c>pt</c> runs here.</summary>
    [Option("infer_backend", "Inference engine: Osprey's own 'pt'; vllm, sglang and lmdeploy run it too, with a notice.", Placeholder = "pt")]
    public string InferBackend { get; init; } = "pt";

    /// <summary>Fetch http(s) <c>image_url</c>s of a vision-language model's requests (off: data URLs only).</summary>
    [Option("allow_remote_images", "For a vision-language model: also fetch http(s) image_url parts (default: data URLs only).")]
    public bool AllowRemoteImages { get; init; }

    /// <summary>Images per request at most.</summary>
    [Option("max_images_per_request", "For a vision-language model: images per request at most.", DefaultText = "8")]
    public int? MaxImagesPerRequest { get; init; }

    /// <summary>Encoded bytes per image at most.</summary>
    [Option("max_image_bytes", "For a vision-language model: encoded bytes per image at most (data URL or download).", DefaultText = "20971520 (20 MiB)")]
    public long? MaxImageBytes { get; init; }

    /// <summary>--max_pixels / --min_pixels for a vision-language model's request images.</summary>
    [OptionGroup]
    public Osprey.Images.ImageOptions ImageSizes { get; init; } = new();

    /// <summary>The port to listen on: --port, else the verb's default.</summary>
    public int PortFor(bool webUi) => Port ?? (webUi ? AppPort : DeployPort);

    /// <summary>
    /// Checks the flags and returns the adapters by name (<c>NAME=DIR</c>, or the folder's name); throws an
    /// <see cref="OspreyException"/> naming the flag.
    /// </summary>
    public IReadOnlyList<(string Name, string Path)> Validate()
    {
        InferOptions.BackendNotice(InferBackend);
        if (Port is < 0 or > 65535) throw new OspreyException($"--port must be between 0 and 65535, got {Port}.");
        if (string.IsNullOrWhiteSpace(Host)) throw new OspreyException("--host is empty; pass an address such as 127.0.0.1 or 0.0.0.0.");
        if (ApiKey is not null && ApiKey.Trim().Length == 0) throw new OspreyException("--api_key is empty; pass a non-empty key or drop the flag.");
        if (ServedModelName is not null && ServedModelName.Trim().Length == 0) throw new OspreyException("--served_model_name is empty; pass a name or drop the flag.");
        if (MaxBatchSize is < 1) throw new OspreyException($"--max_batch_size must be 1 or more, got {MaxBatchSize}.");
        TensorParallel.Validate();
        if (MaxModelLen is < 2) throw new OspreyException($"--max_model_len must be 2 or more, got {MaxModelLen}.");
        if (MaxImagesPerRequest is < 1) throw new OspreyException($"--max_images_per_request must be 1 or more, got {MaxImagesPerRequest}.");
        if (MaxImageBytes is < 1) throw new OspreyException($"--max_image_bytes must be 1 or more, got {MaxImageBytes}.");

        var adapters = new List<(string Name, string Path)>();
        foreach (var a in Adapters)
        {
            var eq = a.IndexOf('=', StringComparison.Ordinal);
            var (n, path) = eq > 0 ? (a[..eq], a[(eq + 1)..]) : (Path.GetFileName(Path.TrimEndingDirectorySeparator(a)), a);
            if (eq == 0 || string.IsNullOrWhiteSpace(n)) throw new OspreyException($"--adapters {a} has an empty name; write it as NAME=DIR or give a folder.");
            if (string.IsNullOrEmpty(path)) throw new OspreyException($"--adapters {a} has no folder after '='; write it as NAME=DIR.");
            if (!Directory.Exists(path)) throw new OspreyException($"--adapters {a}: the folder {path} does not exist; pass a LoRA checkpoint folder.");
            if (!PeftAdapter.IsAdapter(path)) throw new OspreyException($"--adapters {a}: {path} has no adapter_config.json; pass a LoRA checkpoint-N folder or a PEFT adapter folder.");
            if (adapters.Any(x => x.Name == n)) throw new OspreyException($"--adapters names '{n}' twice; give each adapter its own name as NAME=DIR.");
            if (n == ServedModelName) throw new OspreyException($"--adapters name '{n}' is also the --served_model_name; rename one of them.");
            adapters.Add((n, path));
        }
        return adapters;
    }

    /// <summary>What <see cref="ServedModel.Load"/> takes, with the <paramref name="adapters"/> <see cref="Validate"/> returned.</summary>
    public ServeOptions ToServeOptions(IReadOnlyList<(string Name, string Path)> adapters)
    {
        var engine = new EngineOptions();
        return new ServeOptions
        {
            ServedModelName = ServedModelName,
            Template = Template,
            Adapters = adapters.ToDictionary(a => a.Name, a => a.Path),
            Engine = engine with { MaxBatchSize = MaxBatchSize ?? engine.MaxBatchSize, MaxModelLen = MaxModelLen, CudaGraphs = !EnforceEager },
            Images = new ImageRequestOptions
            {
                AllowRemote = AllowRemoteImages,
                MaxImages = MaxImagesPerRequest ?? new ImageRequestOptions().MaxImages,
                MaxImageBytes = MaxImageBytes ?? new ImageRequestOptions().MaxImageBytes,
                Sizes = ImageSizes,
            },
        };
    }
}
