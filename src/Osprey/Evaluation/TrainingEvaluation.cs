using Osprey.Inference;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Evaluation;

/// <summary>
/// <c>osprey eval</c> on the model being trained, between steps (ms-swift's <c>--eval_use_evalscope</c>): the same
/// sets, prompts and scoring as the command, run by <see cref="EvalRunner"/> on the live model (LoRA adapters
/// attached, not merged) without taking ownership of it. Training calls <see cref="Evaluate"/> through its evaluation
/// hook (Training and Evaluation share a layer, so the composer — the CLI or a program — joins them:
/// <c>new EvaluationHook(e.Names, e.Evaluate)</c>). Each call writes the step's reports and per-item records into the
/// folder it is given, so a step's scores can be inspected and compared with <c>osprey eval</c> of its checkpoint.
/// </summary>
public sealed class TrainingEvaluation
{
    readonly EvalOptions _options;
    readonly string? _template;
    readonly TextWriter _log;
    Tokenizer? _tokenizer;
    ChatPrompt? _chat;

    /// <summary>
    /// Checks <paramref name="options"/> and reads (downloading hub benchmarks into the cache) every set now, so a
    /// wrong name or folder fails before training starts rather than at the first evaluation step.
    /// <paramref name="template"/> is the run's <c>--template</c> (null: the tokenizer's own chat template).
    /// </summary>
    public TrainingEvaluation(EvalOptions options, string? template, TextWriter log)
    {
        options.Validate();
        if (options.Url is not null) throw new OspreyException("--eval_url has no meaning during training: the benchmarks run on the weights being trained.");
        _ = EvalSets.Load(options, log);
        _options = options;
        _template = template;
        _log = log;
    }

    /// <summary>The names of the headline scores: one per set, its accuracy (or its first metric for open answers).</summary>
    public IReadOnlyList<string> Names => _options.Datasets;

    /// <summary>
    /// Evaluates <paramref name="model"/> after step <paramref name="step"/> into <paramref name="outputDir"/> and returns
    /// each set's headline score under the set's name and every other overall metric as <c>&lt;set&gt;_&lt;metric&gt;</c>.
    /// The caller puts the model in evaluation mode with gradients off.
    /// </summary>
    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, long step, string outputDir)
    {
        var folder = model.SourceDirectory ?? throw new OspreyException("benchmark evaluation needs a model loaded from a folder (for its tokenizer).");
        _tokenizer ??= ChatPrompt.LoadTokenizer(folder, "benchmark evaluation needs the model's tokenizer.json.");
        _chat ??= _template is not null || _tokenizer.ChatTemplateSource is not null ? ChatPrompt.Create(_tokenizer, folder, _template) : null;
        var options = _options with { OutputDir = outputDir };
        var name = $"{Path.GetFileName(folder)}@step-{step}";
        var report = EvalRunner.RunAsync(options,
            () => new LocalEvalModel(model, _tokenizer, _chat, options.ApplyChatTemplate, options.Generation(), options.BatchSize, name, ownsModel: false),
            TextWriter.Null, _log).GetAwaiter().GetResult();
        return Scores(report, options.Datasets);
    }

    /// <summary>Each set's overall metrics: "acc" (or the first one) under the set's name, the others as set_metric.</summary>
    public static IReadOnlyDictionary<string, double> Scores(EvalReport report, IReadOnlyList<string> datasets)
    {
        var scores = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var dataset in datasets)
        {
            var overall = report.Rows.Where(r => r.Dataset == dataset && r.Level == "overall").ToList();
            if (overall.Count == 0) continue;
            var headline = overall.FirstOrDefault(r => r.Metric == "acc") ?? overall[0];
            scores[dataset] = headline.Score;
            foreach (var r in overall.Where(r => r != headline)) scores[$"{dataset}_{r.Metric}"] = r.Score;
        }
        return scores;
    }
}
