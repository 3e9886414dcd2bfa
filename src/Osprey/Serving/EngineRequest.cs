using Osprey.Inference;
namespace Osprey.Serving;

/// <summary>One request for an <see cref="InferenceEngine"/>.</summary>
/// <param name="PromptIds">The prompt's token ids.</param>
/// <param name="Sampling">How to generate.</param>
/// <param name="Adapter">The LoRA adapter to apply (a name given to the engine), or null for the base model.</param>
public sealed record EngineRequest(IReadOnlyList<int> PromptIds, SamplingParams Sampling, string? Adapter = null);
