using Osprey.Models;

namespace Osprey.Training;

/// <summary>
/// Benchmark evaluation during training (ms-swift's <c>--eval_use_evalscope</c>), plugged in from outside: Training
/// and Evaluation sit side by side in one layer, so neither references the other. Training defines this seam and calls
/// it at every evaluation step, with the model in evaluation mode and gradients off; whoever composes the run (the
/// CLI, a program) hands in an Evaluation implementation. <see cref="Evaluate"/> receives the training model as it
/// is (LoRA adapters live), the step just completed and a folder for that step's files, and returns scores by name;
/// each is logged as <c>eval_&lt;name&gt;</c>.
/// </summary>
/// <param name="Names">The score names it returns (plotted as <c>eval_&lt;name&gt;</c> curves).</param>
/// <param name="Evaluate">Scores the model after a step: (model, step, output folder) → name → score.</param>
public sealed record EvaluationHook(IReadOnlyList<string> Names, Func<CausalLM, long, string, IReadOnlyDictionary<string, double>> Evaluate);
