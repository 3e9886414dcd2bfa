namespace Osprey.Runtime;

/// <summary>What the user asked for with <c>--device</c>: auto, cpu, cuda or cuda:N.</summary>
public sealed record DeviceSpec(DeviceKind Kind, int Index)
{
    /// <summary>Pick CUDA when a CUDA libtorch and a GPU are found, else CPU.</summary>
    public static DeviceSpec Auto { get; } = new(DeviceKind.Auto, 0);

    /// <summary>The CPU.</summary>
    public static DeviceSpec Cpu { get; } = new(DeviceKind.Cpu, 0);

    /// <summary>Parses auto|cpu|cuda|cuda:N (case-insensitive).</summary>
    public static DeviceSpec Parse(string? text)
    {
        var t = (text ?? "auto").Trim().ToLowerInvariant();
        if (t is "" or "auto") return Auto;
        if (t == "cpu") return Cpu;
        if (t == "cuda" || t == "gpu") return new(DeviceKind.Cuda, 0);
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var n) && n >= 0)
            return new(DeviceKind.Cuda, n);
        throw new OspreyException($"--device '{text}' is not a device; use auto, cpu, cuda or cuda:N.");
    }

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        DeviceKind.Auto => "auto",
        DeviceKind.Cpu => "cpu",
        _ => $"cuda:{Index}",
    };
}
