namespace Osprey.Models.Mistral;

/// <summary>config.json of Mistral (model_type "mistral"): the shared fields, sliding_window included.</summary>
public sealed record MistralConfig : TransformerConfig;
