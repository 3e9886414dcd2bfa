using System.Globalization;
using Osprey.Cli.Args;
using Osprey.Inference;
using Osprey.Models;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey infer</c>: generate from token-id prompts. Without --model it runs a built-in tiny random
/// Llama so the whole path works with no download. Text prompts arrive with the tokenizer.
/// </summary>
internal sealed class InferCommand : ICommand
{
    public string Name => "infer";

    public string Summary => "Generate tokens from a model (without --model: a built-in tiny random demo model).";

    public string Usage => ModelFlags.Help +
        "  --input_ids IDS          Prompt token ids, comma or space separated; several prompts with ';' (batched).\n" +
        "  --max_new_tokens N       Tokens to generate at most (default: generation_config.json, else 256).\n" +
        "  --do_sample BOOL         Sample instead of greedy decoding (default: generation_config.json, else false).\n" +
        "  --temperature X          Sampling temperature; 0 means greedy.\n" +
        "  --top_k N                Keep the N most likely tokens when sampling (0 = all).\n" +
        "  --top_p P                Nucleus sampling threshold in (0, 1].\n" +
        "  --repetition_penalty X   Penalise tokens already seen (1 = off).\n" +
        "  --seed N                 Seed for sampling (default 42).\n" +
        "  --ignore_eos BOOL        Keep generating past end-of-sequence tokens.\n" +
        "  --stream BOOL            Print each token as it is generated (one prompt only).\n" +
        "  --infer_backend pt       Inference engine; only the built-in 'pt' exists.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var flags = ModelFlags.Read(options);
        var ids = options.String("input_ids");
        var maxNew = options.Int("max_new_tokens");
        var doSample = options.Bool("do_sample");
        var temperature = options.Double("temperature");
        var topK = options.Int("top_k");
        var topP = options.Double("top_p");
        var penalty = options.Double("repetition_penalty");
        var seed = options.Long("seed", 42);
        var ignoreEos = options.Bool("ignore_eos", false);
        var stream = options.Bool("stream", false);
        var backend = options.String("infer_backend", "pt");
        options.EnsureNoUnknownFlags();
        if (backend != "pt") throw new UserError($"--infer_backend {backend} is not available; Osprey's engine is 'pt' (vllm/sglang/lmdeploy are Python-only).");

        // libtorch is loaded once per process: load it for the requested device before anything touches
        // TorchSharp (the demo model is built with it), or TorchSharp would pick its own CPU library.
        Runtime.TorchRuntime.Initialize(flags.Device, stderr);
        string folder;
        if (flags.Model is null)
        {
            folder = DemoModel.EnsureCreated();
            stderr.WriteLine($"osprey: no --model given; using the built-in demo model (tiny Llama, random weights) in {folder}.");
        }
        else
        {
            folder = flags.RequireFolder();
        }
        var prompts = ParsePrompts(ids ?? "1 17 42 99");
        using var model = CausalLM.Load(folder, flags.LoadOptions(stderr));
        var o = GenerationOptions.FromModel(model.Spec, GenerationConfigFile.Read(folder));
        o = o with
        {
            MaxNewTokens = maxNew ?? o.MaxNewTokens,
            DoSample = doSample ?? (temperature is > 0 || o.DoSample),
            Temperature = temperature ?? o.Temperature,
            TopK = topK ?? o.TopK,
            TopP = topP ?? o.TopP,
            RepetitionPenalty = penalty ?? o.RepetitionPenalty,
            Seed = seed,
            EosTokenIds = ignoreEos ? [] : o.EosTokenIds,
        };
        if (stream && prompts.Count > 1) throw new UserError("--stream prints one prompt's tokens as they come; give one prompt or drop --stream.");
        var generator = new TokenGenerator(model);
        if (stream)
        {
            var r = generator.Generate(prompts[0], o, e => { stdout.Write(e.Index == 0 ? $"{e.TokenId}" : $" {e.TokenId}"); stdout.Flush(); });
            stdout.WriteLine();
            stderr.WriteLine($"osprey: {r.Tokens.Count} tokens, finished by {r.Reason.ToString().ToLowerInvariant()}.");
            return 0;
        }
        var results = generator.Generate(prompts, o);
        for (int i = 0; i < results.Count; i++)
            stdout.WriteLine($"[{i}] {string.Join(' ', results[i].Tokens)}  ({results[i].Reason.ToString().ToLowerInvariant()})");
        return 0;
    }

    internal static IReadOnlyList<IReadOnlyList<int>> ParsePrompts(string text)
    {
        var prompts = new List<IReadOnlyList<int>>();
        foreach (var part in text.Split(';'))
        {
            var tokens = part.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var ids = new int[tokens.Length];
            for (int i = 0; i < tokens.Length; i++)
                if (!int.TryParse(tokens[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]))
                    throw new UserError($"--input_ids holds '{tokens[i]}', which is not a token id; give integers like \"1 17 42\".");
            if (ids.Length == 0) throw new UserError("--input_ids has an empty prompt; give at least one token id per prompt.");
            prompts.Add(ids);
        }
        return prompts;
    }
}
