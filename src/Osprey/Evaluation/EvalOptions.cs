using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Evaluation;

/// <summary>
/// What <c>osprey eval</c> does, with ms-swift's (EvalScope's) flag names: which sets (<see cref="Datasets"/>, with
/// <see cref="DatasetArgs"/> for custom folders), how many items, few-shot examples, generation settings, where the
/// reports go, and either a local model (<c>--model</c>, <c>--adapters</c>) or an OpenAI-compatible server
/// (<see cref="Url"/>).
/// </summary>
public sealed record EvalOptions
{
    /// <summary>--model and the device flags; with <see cref="Url"/>, --model is the served model's name.</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>The model folder (resolved by the CLI); empty in URL mode.</summary>
    public string ModelFolder { get; init; } = "";

    /// <summary>--eval_dataset: set names (general_mcq, general_qa, and the benchmarks of <see cref="HubBenchmarks.Ids"/>).</summary>
    [Option("eval_dataset", "Sets to evaluate: general_mcq (multiple choice), general_qa (open answers; BLEU/ROUGE) from --dataset_args local_path folders; mmlu, ceval, cmmlu, arc, hellaswag, winogrande, truthful_qa, race, bbh, ifeval and gsm8k from the hubs (EvalScope's ModelScope ids, Hugging Face with --use_hf) or a local_path.", Placeholder = "NAME...")]
    public IReadOnlyList<string> Datasets { get; init; } = [];

    /// <summary>--eval_limit: items per subset (null: all).</summary>
    [Option("eval_limit", "Evaluate at most N items of each subset.", DefaultText = "all")]
    public int? Limit { get; init; }

    /// <summary>--eval_few_shot: examples from the dev split put before each question (null: the set's default, 0).</summary>
    [Option("eval_few_shot", "Few-shot examples taken from each subset's dev split.", DefaultText = "0")]
    public int? FewShot { get; init; }

    /// <summary>--eval_generation_config: JSON with max_tokens, temperature, top_p, top_k, do_sample.</summary>
    [Option("eval_generation_config", "Generation settings as JSON, e.g. '{\"max_tokens\": 256, \"temperature\": 0}' (default: greedy, 256 tokens).", Placeholder = "JSON")]
    public string? GenerationConfig { get; init; }

    /// <summary>--dataset_args: per set, EvalScope's <c>{"general_mcq": {"local_path": DIR, "subset_list": [...]}}</c>.</summary>
    [Option("dataset_args", "Per-set settings as JSON, as EvalScope: '{\"general_mcq\": {\"local_path\": \"DIR\", \"subset_list\": [\"a\", \"b\"], \"few_shot_num\": 0}}'.", Placeholder = "JSON")]
    public string? DatasetArgs { get; init; }

    /// <summary>--eval_output_dir: where the reports and the per-item records go.</summary>
    [Option("eval_output_dir", "Folder for report.json, report.md, report.png and the per-item predictions (resumed when they exist).", Placeholder = "DIR")]
    public string OutputDir { get; init; } = "eval_output";

    /// <summary>--eval_backend: only EvalScope's Native protocol is implemented.</summary>
    [Option("eval_backend", "Evaluation backend: Native (EvalScope's protocol, run by Osprey).", Placeholder = "Native")]
    public string Backend { get; init; } = "Native";

    /// <summary>--eval_batch_size: questions generated (or scored) together on a local model.</summary>
    [Option("eval_batch_size", "Prompts generated together as one batch on a local model.")]
    public int BatchSize { get; init; } = 8;

    /// <summary>--eval_num_proc: requests in flight at once against --eval_url.</summary>
    [Option("eval_num_proc", "Requests in flight at once against --eval_url.")]
    public int NumProc { get; init; } = 8;

    /// <summary>--eval_url: an OpenAI-compatible base URL (…/v1); null evaluates --model locally.</summary>
    [Option("eval_url", "Evaluate an OpenAI-compatible server (http://host:port/v1) instead of loading --model; --model names the served model.", Placeholder = "URL")]
    public string? Url { get; init; }

    /// <summary>--api_key for <see cref="Url"/>.</summary>
    [Option("api_key", "Bearer key for --eval_url.", Placeholder = "KEY")]
    public string? ApiKey { get; init; }

    /// <summary>--adapters merged into the local model.</summary>
    [Option("adapters", "LoRA adapters (checkpoint-N folders or PEFT adapters) merged into --model at load.", Placeholder = "DIR...", Aliases = ["ckpt_dir"])]
    public IReadOnlyList<string> Adapters { get; init; } = [];

    /// <summary>--eval_mc_method: how multiple-choice items are answered (null: loglikelihood locally, generation over a URL).</summary>
    [Option("eval_mc_method", "Multiple choice by 'loglikelihood' of each option (lm-evaluation-harness; local models only) or by 'generation' with answer extraction (EvalScope).", DefaultText = "loglikelihood, generation with --eval_url")]
    public string? McMethod { get; init; }

    /// <summary>--apply_chat_template (null: on for generation, off for log-likelihood, as the reference harnesses do).</summary>
    [Option("apply_chat_template", "Wrap prompts in the model's chat template.", DefaultText = "true for generation, false for loglikelihood")]
    public bool? ApplyChatTemplate { get; init; }

    /// <summary>--template: the chat template (as infer's).</summary>
    [Option("template", "Chat template: a Jinja file, a named template of the tokenizer, or an ms-swift name.", Placeholder = "FILE|NAME")]
    public string? Template { get; init; }

    /// <summary>The multiple-choice method in effect.</summary>
    public McMethod ResolvedMcMethod => McMethod switch
    {
        null => Url is null ? Evaluation.McMethod.LogLikelihood : Evaluation.McMethod.Generation,
        "loglikelihood" => Evaluation.McMethod.LogLikelihood,
        "generation" => Evaluation.McMethod.Generation,
        _ => throw new OspreyException($"--eval_mc_method {McMethod} is unknown; use loglikelihood or generation."),
    };

    /// <summary>Checks the flags once, before anything loads.</summary>
    public void Validate()
    {
        if (Datasets.Count == 0) throw new OspreyException("--eval_dataset is missing; name a set such as general_mcq (with --dataset_args for its folder).");
        if (Backend != "Native") throw new OspreyException($"--eval_backend {Backend} is not available; Osprey runs EvalScope's Native protocol itself, so pass --eval_backend Native or drop the flag.");
        if (Limit is < 1) throw new OspreyException($"--eval_limit must be 1 or more, got {Limit}.");
        if (FewShot is < 0) throw new OspreyException($"--eval_few_shot must be 0 or more, got {FewShot}.");
        if (BatchSize < 1) throw new OspreyException($"--eval_batch_size must be 1 or more, got {BatchSize}.");
        if (NumProc < 1) throw new OspreyException($"--eval_num_proc must be 1 or more, got {NumProc}.");
        if (Url is not null)
        {
            if (!Uri.TryCreate(Url, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
                throw new OspreyException($"--eval_url {Url} is not an http(s) URL; give the server's base such as http://127.0.0.1:8000/v1.");
            if (string.IsNullOrEmpty(Model.Model)) throw new OspreyException("--eval_url needs --model NAME, the model name the server serves.");
            if (Adapters.Count > 0) throw new OspreyException("--adapters load into a local model; with --eval_url the server decides the weights, so drop --adapters.");
            if (ResolvedMcMethod == Evaluation.McMethod.LogLikelihood)
                throw new OspreyException("--eval_mc_method loglikelihood needs the model's logits, which a chat server does not give; use --eval_mc_method generation with --eval_url.");
        }
        _ = ResolvedMcMethod;
        _ = Generation();
        _ = ParsedDatasetArgs();
    }

    /// <summary>The generation settings of <see cref="GenerationConfig"/>: greedy with 256 new tokens unless it says otherwise.</summary>
    public EvalGeneration Generation()
    {
        var g = new EvalGeneration();
        if (GenerationConfig is null) return g;
        var json = ParseObject(GenerationConfig, "--eval_generation_config");
        foreach (var (key, value) in json)
        {
            try
            {
                g = key switch
                {
                    "max_tokens" or "max_new_tokens" => g with { MaxTokens = value!.GetValue<int>() },
                    "temperature" => g with { Temperature = value!.GetValue<double>() },
                    "top_p" => g with { TopP = value!.GetValue<double>() },
                    "top_k" => g with { TopK = value!.GetValue<int>() },
                    "do_sample" => g with { DoSample = value!.GetValue<bool>() },
                    "seed" => g with { Seed = value!.GetValue<long>() },
                    _ => throw new OspreyException($"--eval_generation_config has the key '{key}', which Osprey does not use; the keys are max_tokens, temperature, top_p, top_k, do_sample and seed."),
                };
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new OspreyException($"--eval_generation_config: '{key}' has the value {value?.ToJsonString() ?? "null"}, which is not a {(key is "do_sample" ? "boolean" : "number")}; fix the value.");
            }
        }
        if (g.MaxTokens < 1) throw new OspreyException($"--eval_generation_config: max_tokens must be 1 or more, got {g.MaxTokens}.");
        return g;
    }

    /// <summary>The settings of <see cref="DatasetArgs"/> for the set <paramref name="name"/> (empty when none).</summary>
    public JsonObject ArgsFor(string name) => ParsedDatasetArgs().TryGetPropertyValue(name, out var v) && v is JsonObject o ? o : [];

    JsonObject ParsedDatasetArgs()
    {
        if (DatasetArgs is null) return [];
        var json = ParseObject(DatasetArgs, "--dataset_args");
        foreach (var (key, value) in json)
            if (value is not JsonObject)
                throw new OspreyException($"--dataset_args: the value of '{key}' must be an object such as {{\"local_path\": \"DIR\"}}; got {value?.ToJsonString() ?? "null"}.");
        return json;
    }

    static JsonObject ParseObject(string text, string flag)
    {
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new OspreyException($"{flag} must be a JSON object ({{...}}); got {text}.");
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{flag} is not valid JSON ({e.Message}); quote it in single quotes, e.g. '{{\"max_tokens\": 256}}'.");
        }
    }
}
