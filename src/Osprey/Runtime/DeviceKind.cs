namespace Osprey.Runtime;

/// <summary>The kinds of device Osprey runs on.</summary>
public enum DeviceKind
{
    /// <summary>Decide at start-up.</summary>
    Auto,
    /// <summary>The CPU.</summary>
    Cpu,
    /// <summary>An NVIDIA GPU through CUDA.</summary>
    Cuda,
}
