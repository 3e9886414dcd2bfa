using System.Globalization;
using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Options;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey infer</c>, three ways: an interactive chat on stdin (the default), a batch over a dataset
/// (<c>--val_dataset</c>, ms-swift's messages or query rows, results as JSON lines) or raw token ids
/// (<c>--input_ids</c>). Without --model it runs a built-in tiny random Llama so the whole path works with no
/// download. Reads the flags and calls <see cref="Infer.Run"/>.
/// </summary>
internal sealed class InferCommand : ICommand
{
    public string Name => "infer";

    public IReadOnlyList<Type> OptionsTypes => [typeof(InferOptions)];

    public string Summary => "Chat with a model, answer a dataset, or generate from token ids (without --model: a tiny random demo model).";

    public string Usage => OptionSet.For<InferOptions>().Help() +
        "  --input_ids IDS          Prompt token ids, comma or space separated; several prompts with ';' (batched).\n" +
        "\n" +
        "Reward models (config.json architectures *ForSequenceClassification, or --adapters with task_type SEQ_CLS) score\n" +
        "instead of generating: --val_dataset prints each row plus \"score\" (the whole conversation, final assistant\n" +
        "message included, rendered with the tokenizer's chat template and no generation prompt); --input_ids prints\n" +
        "\"[i] <score>\" per prompt. The generation flags do not apply; there is no chat.\n" +
        "\n" +
        "In the chat, 'clear' forgets the conversation and 'exit', 'quit' or end of input stop.\n" +
        OptionSet.NoEffectHelp(OptionSet.For<InferOptions>());

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, Console.In, stdout, stderr);

    public int Run(OptionReader options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var infer = options.Bind<InferOptions>();
        var ids = options.String("input_ids");
        options.EnsureNoUnknownFlags();

        var (model, adapterTemplate) = AdapterBaseModel.Resolve(infer.Adapters, infer.Model, null);
        var flags = new ModelFlags(model);
        if (ids is null) infer = infer with { Template = infer.Template ?? adapterTemplate };
        // Validated with a placeholder for the prompts: they are parsed once the model folder is known, as before.
        (infer with { InputIds = ids is null ? null : [] }).Validate();
        if (InferOptions.BackendNotice(infer.InferBackend) is { } backend) stderr.WriteLine(backend);

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
        infer = infer with
        {
            ModelFolder = folder,
            RewardModel = CausalLM.IsRewardFolder(folder) || infer.Adapters.Any(PeftAdapter.IsSequenceClassification),
            InputIds = ids is null ? null : ParsePrompts(ids),
        };
        var terminal = ReferenceEquals(stdin, Console.In) && !Console.IsInputRedirected;
        return Infer.Run(infer, () => MergedAdapters.Load(folder, flags.LoadOptions(stderr), infer.Adapters, stderr), stdin, stdout, stderr, terminal);
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
