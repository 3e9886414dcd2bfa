namespace Osprey.Diagnostics;

/// <summary>
/// One combination checked by <see cref="KernelProbe.Check"/>: elements of the kernel's dequantized weight that differ
/// from the tensor path's (must be 0), and the fused product's largest error relative to the largest output of a float32
/// matmul of the same dequantized weight (rounding of the compute dtype only).
/// </summary>
public sealed record KernelCheck(string Type, bool DoubleQuant, string StoredDType, string ComputeDType, long Elements, long Mismatched, double GemvRelativeError);
