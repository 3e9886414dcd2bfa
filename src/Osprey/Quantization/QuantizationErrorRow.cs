namespace Osprey.Quantization;

/// <summary>
/// One linear layer's output error on held-out calibration activations X after a calibrated export:
/// ‖X(W − Ŵ)ᵀ‖² / ‖XWᵀ‖² for the method's weights (<paramref name="MethodError"/>) and for plain round-to-nearest at the
/// same bits and group size (<paramref name="RoundToNearestError"/>). <paramref name="Kind"/> is the projection's name
/// (q_proj, down_proj, ...).
/// </summary>
public sealed record QuantizationErrorRow(string Layer, string Kind, double MethodError, double RoundToNearestError);
