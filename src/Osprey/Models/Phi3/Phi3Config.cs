namespace Osprey.Models.Phi3;

/// <summary>config.json of Phi-3 (model_type "phi3"): the shared fields, partial_rotary_factor included.</summary>
public sealed record Phi3Config : TransformerConfig;
