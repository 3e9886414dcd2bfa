using Osprey.Evaluation;
using Osprey.Training;

namespace Osprey.Cli.Commands;

/// <summary>
/// Joins Training and Evaluation for <c>--eval_dataset</c> on sft, pt and rlhf: the two share a layer and do not know
/// each other, so the CLI turns the trainer's benchmark flags into <see cref="EvalOptions"/> and hands
/// <see cref="TrainingEvaluation.Evaluate"/> to the run as its <see cref="EvaluationHook"/>.
/// </summary>
internal static class TrainingBenchmarks
{
    /// <summary>The hook for <paramref name="o"/>'s benchmark flags; null when none are given.</summary>
    public static EvaluationHook? Hook(SftOptions o, TextWriter log)
    {
        var t = o.Trainer;
        if (!t.BenchmarkEvaluation) return null;
        t.Validate();   // the trainer's own words for its benchmark flags come before osprey eval's
        var evaluation = new TrainingEvaluation(new EvalOptions
        {
            Model = o.Model,
            Datasets = t.EvalDatasets,
            Limit = t.EvalLimit,
            DatasetArgs = t.EvalDatasetArgs,
            GenerationConfig = t.EvalGenerationConfig,
            BatchSize = t.EvalBatchSize,
        }, o.Encoding.Template, log);
        return new EvaluationHook(evaluation.Names, evaluation.Evaluate);
    }
}
