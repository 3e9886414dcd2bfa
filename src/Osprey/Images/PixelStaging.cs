using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Images;

/// <summary>
/// Host memory that a batch's pixel values are gathered in before they go to the device, kept between calls. A batch
/// of large pictures is ~100 MB of float32 and fresh memory of that size is mostly page faults (measured on a 2-core
/// EPYC: ~250 ms to fill a new 94 MB array, ~6 ms to fill one filled before), so a vision tower keeps one of these. Pinned
/// on CUDA, so the copy to the device runs at the bus's speed. Thread-safe.
/// </summary>
internal sealed class PixelStaging : IDisposable
{
    readonly Lock _lock = new();
    Tensor? _buffer;

    /// <summary>
    /// The float arrays <paramref name="parts"/>, one after another, as a new tensor of <paramref name="shape"/> in
    /// <paramref name="dtype"/> on <paramref name="device"/> (never a view of the buffer).
    /// </summary>
    public Tensor Stage(IEnumerable<float[]> parts, long[] shape, Device device, ScalarType dtype)
    {
        var arrays = parts.ToList();
        long total = 0;
        foreach (var a in arrays) total += a.Length;
        if (shape.Aggregate(1L, (p, d) => p * d) != total) throw new ArgumentException($"{total} values do not fill [{string.Join(", ", shape)}]", nameof(shape));
        if (Runtime.Cpu.TensorMemory.Unavailable() is not null)
        {
            // No raw address of a tensor in this process: one managed array, as a new tensor.
            var all = new float[total];
            long o = 0;
            foreach (var a in arrays)
            {
                Array.Copy(a, 0, all, o, a.Length);
                o += a.Length;
            }
            return tensor(all, shape, dtype: ScalarType.Float32, device: device).to_type(dtype);
        }
        var cuda = device.type == DeviceType.CUDA;
        lock (_lock)
        {
            if (_buffer is null || _buffer.numel() < total || (cuda && !_buffer.is_pinned()))
            {
                _buffer?.Dispose();
                using var plain = empty(total, dtype: ScalarType.Float32);
                _buffer = (cuda ? plain.pin_memory() : plain.alias()).DetachFromDisposeScope();
            }
            Fill(arrays, total);
            var staged = _buffer.narrow(0, 0, total).view(shape);
            // On CUDA a synchronous copy, since the next call refills the buffer; on the CPU a copy, never the buffer.
            if (cuda) return staged.to(device).to_type(dtype);
            return dtype == ScalarType.Float32 ? staged.clone() : staged.to_type(dtype);
        }
    }

    unsafe void Fill(List<float[]> arrays, long total)
    {
        var target = (float*)Runtime.Cpu.TensorMemory.Address(_buffer!);
        long offset = 0;
        foreach (var a in arrays)
        {
            fixed (float* source = a)
                Buffer.MemoryCopy(source, target + offset, (total - offset) * sizeof(float), (long)a.Length * sizeof(float));
            offset += a.Length;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _buffer?.Dispose();
            _buffer = null;
        }
    }
}
