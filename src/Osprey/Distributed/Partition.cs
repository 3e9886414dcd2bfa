namespace Osprey.Distributed;

/// <summary>
/// How a flat buffer of <see cref="Length"/> elements is split over ranks for reduce-scatter and all-gather: padded to
/// a multiple of the world size, each rank owns one equal, contiguous shard (the last real elements may share the
/// final shards with padding, which stays zero and is never read back).
/// </summary>
public sealed record Partition(long Length, int WorldSize)
{
    /// <summary>Elements per rank: ⌈Length / WorldSize⌉.</summary>
    public long ShardLength => (Length + WorldSize - 1) / WorldSize;

    /// <summary>The padded length, ShardLength × WorldSize.</summary>
    public long PaddedLength => ShardLength * WorldSize;

    /// <summary>The first element of <paramref name="rank"/>'s shard.</summary>
    public long Start(int rank) => rank * ShardLength;

    /// <summary>The real (not padding) elements of <paramref name="rank"/>'s shard: 0 … ShardLength.</summary>
    public long RealLength(int rank) => Math.Clamp(Length - Start(rank), 0, ShardLength);
}
