using Osprey.Images;
using Osprey.Inference;
namespace Osprey.Serving;

/// <summary>One request for an <see cref="InferenceEngine"/>.</summary>
/// <param name="PromptIds">The prompt's token ids.</param>
/// <param name="Sampling">How to generate.</param>
/// <param name="Adapter">The LoRA adapter to apply (a name given to the engine), or null for the base model.</param>
/// <param name="Images">For a vision-language model: the images whose placeholder tokens the prompt holds, in order
/// (each image's <see cref="Osprey.Models.VisionInput.TokenCount"/> image_token_ids in a row); null or empty for none.</param>
public sealed record EngineRequest(IReadOnlyList<int> PromptIds, SamplingParams Sampling, string? Adapter = null, IReadOnlyList<ProcessedImage>? Images = null);
