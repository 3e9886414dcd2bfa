namespace Osprey.Runtime;

/// <summary>One GPU as NVML reports it.</summary>
public sealed record GpuInfo(int Index, string Name, long TotalBytes, long UsedBytes);
