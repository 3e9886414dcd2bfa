using Osprey.Runtime;

namespace Osprey.Models;

/// <summary>How to load a model: <c>--device</c> and <c>--torch_dtype</c>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>auto, cpu, cuda or cuda:N.</summary>
    public DeviceSpec Device { get; init; } = DeviceSpec.Auto;

    /// <summary>auto (config dtype on GPU, float32 on CPU), bfloat16, float16 or float32.</summary>
    public string DType { get; init; } = "auto";

    /// <summary>Where the one-line CPU fallback notice goes (stderr when null).</summary>
    public TextWriter? Notice { get; init; }

    /// <summary>Which folders load with quantized linear layers (quantization_config, or --quant_method at load); null: none.</summary>
    internal IQuantizedLoader? Quantization { get; init; }
    /// <summary>
    /// Load this rank's shard of a tensor-parallel model on the group's device (--tensor_parallel_size; see
    /// <see cref="TensorParallelShard"/>); null: the whole model on <see cref="Device"/>. The caller keeps the group.
    /// </summary>
    public Osprey.Distributed.TensorParallelGroup? TensorParallel { get; init; }
}
