using Osprey.Options;

namespace Osprey.Serving;

/// <summary>--tensor_parallel_size (ms-swift's and vLLM's name), taken by <c>osprey deploy</c>, <c>app</c> and <c>benchmark --concurrency</c>.</summary>
public sealed record TensorParallelOptions
{
    /// <summary>Ranks the model is split over; 1: one device.</summary>
    [Option("tensor_parallel_size", "Split the model over N GPUs (tensor parallel: attention heads and MLP columns per GPU, one engine; N must divide num_key_value_heads). With --device cpu, N processes on the CPU (tests). See docs/distributed.md.", Placeholder = "N")]
    public int Size { get; init; } = 1;

    /// <summary>Refuses a size below 1.</summary>
    /// <exception cref="OspreyException">The size is below 1.</exception>
    public void Validate()
    {
        if (Size < 1) throw new OspreyException($"--tensor_parallel_size must be 1 or more, got {Size}.");
    }
}
