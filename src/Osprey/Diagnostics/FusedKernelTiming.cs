namespace Osprey.Diagnostics;

/// <summary>Milliseconds per call of one fused kernel and of the tensor ops it replaces, at <paramref name="Rows"/> rows.</summary>
public sealed record FusedKernelTiming(string Kernel, long Rows, double TensorOpsMs, double FusedMs);
