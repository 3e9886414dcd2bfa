using Osprey.Cli.Args;
using Osprey.Evaluation;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Options;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey eval</c>: scores a local model (<c>--model</c>, <c>--adapters</c>) or an OpenAI-compatible server
/// (<c>--eval_url</c>) on EvalScope-layout sets. Reads the flags and calls <see cref="EvalRunner.RunAsync"/>.
/// </summary>
internal sealed class EvalCommand : ICommand
{
    public string Name => "eval";

    public IReadOnlyList<Type> OptionsTypes => [typeof(EvalOptions)];

    public string Summary => "Evaluate a model or an OpenAI-compatible server on multiple-choice, QA and math sets (EvalScope layouts).";

    public string Usage => OptionSet.For<EvalOptions>().Help() +
        "\nExample: osprey eval --model Qwen/Qwen2.5-0.5B-Instruct --eval_dataset general_mcq \\\n" +
        "          --dataset_args '{\"general_mcq\": {\"local_path\": \"examples/eval/mcq\", \"subset_list\": [\"arith\", \"geo\"]}}'\n" +
        "Reports (report.json, report.md, report.png) and every item (predictions.jsonl) go to --eval_output_dir;\n" +
        "running again with the same folder resumes, answering only the items not yet in predictions.jsonl.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var eval = options.Bind<EvalOptions>();
        options.EnsureNoUnknownFlags();
        eval.Validate();

        Func<IEvalModel> load;
        if (eval.Url is not null)
        {
            load = () => new UrlEvalModel(eval.Url, eval.Model.Model!, eval.ApiKey, eval.Generation(), eval.NumProc);
        }
        else
        {
            var (model, adapterTemplate) = AdapterBaseModel.Resolve(eval.Adapters, eval.Model, null);
            var flags = new ModelFlags(model);
            Runtime.TorchRuntime.Initialize(flags.Device, stderr);
            var folder = flags.Model is null ? throw new UserError("osprey eval needs --model (a folder or hub id) or --eval_url with --model NAME.") : flags.RequireFolder();
            var template = eval.Template ?? adapterTemplate;
            eval = eval with { ModelFolder = folder };
            load = () =>
            {
                var tokenizer = ChatPrompt.LoadTokenizer(folder, "evaluation needs the model's tokenizer.json.");
                var chat = template is not null || tokenizer.ChatTemplateSource is not null ? ChatPrompt.Create(tokenizer, folder, template) : null;
                var causal = MergedAdapters.Load(folder, flags.LoadOptions(stderr), eval.Adapters, stderr);
                return new LocalEvalModel(causal, tokenizer, chat, eval.ApplyChatTemplate, eval.Generation(), eval.BatchSize, model.Model ?? folder);
            };
        }

        using var cancel = new CancellationTokenSource();
        using var signals = new StopSignals(() =>
        {
            cancel.Cancel();
            return true;
        });
        try
        {
            EvalRunner.RunAsync(eval, load, stdout, stderr, cancel.Token).GetAwaiter().GetResult();
            return 0;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stderr.WriteLine($"Evaluation stopped; the items answered so far are in {Path.Combine(eval.OutputDir, EvalRunner.PredictionsFile)}, and the same command resumes from them.");
            return 130;
        }
    }
}
