namespace Osprey.Distributed;

/// <summary>
/// The bucket layout of a flat gradient buffer for all-reduce: consecutive ranges of at most <c>bucketElements</c>
/// elements (PyTorch DDP's 25 MB default is 6.5 M float32 elements), so each collective is large enough to reach the
/// link's bandwidth and small enough that several are in flight in one NCCL group.
/// </summary>
public static class GradientBuckets
{
    /// <summary>DDP's default bucket: 25 MiB of float32.</summary>
    public const long DefaultBucketElements = (25L << 20) / 4;

    /// <summary>The (offset, length) ranges covering [0, <paramref name="length"/>) in order.</summary>
    public static IReadOnlyList<(long Offset, long Length)> Layout(long length, long bucketElements = DefaultBucketElements)
    {
        if (bucketElements < 1) throw new ArgumentOutOfRangeException(nameof(bucketElements));
        var result = new List<(long, long)>();
        for (long offset = 0; offset < length; offset += bucketElements) result.Add((offset, Math.Min(bucketElements, length - offset)));
        return result;
    }
}
