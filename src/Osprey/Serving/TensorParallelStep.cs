namespace Osprey.Serving;

/// <summary>
/// One thing the serving engine does to the model or its KV cache, as rank 0 tells the tensor-parallel workers so they
/// do the same on their shards in the same order (their all-reduces then pair up with rank 0's). Encoded as bytes:
/// the kind, then its numbers little-endian. <see cref="Ids"/> and <see cref="Positions"/> are host arrays; the other
/// fields mean what each kind says.
/// </summary>
internal sealed record TensorParallelStep(TensorParallelStepKind Kind, long[] Ids, long[] Positions, long A = 0, long B = 0, long C = 0)
{
    /// <summary>A new engine's KV cache: <paramref name="rows"/> slots of <paramref name="capacity"/> positions.</summary>
    public static TensorParallelStep NewCache(long rows, long capacity) => new(TensorParallelStepKind.NewCache, [], [], rows, capacity);

    /// <summary>The engine is gone: free its cache.</summary>
    public static TensorParallelStep EndEngine() => new(TensorParallelStepKind.EndEngine, [], []);

    /// <summary>A decode step of rows 0 … n − 1 (ids and positions of length n) over <paramref name="keys"/> keys.</summary>
    public static TensorParallelStep Decode(long[] ids, long[] positions, long keys, bool uniform) => new(TensorParallelStepKind.Decode, ids, positions, keys, uniform ? 1 : 0);

    /// <summary>A batched prefill: ids [k, width] into rows first … first + k − 1; positions hold each row's last index.</summary>
    public static TensorParallelStep Prefill(long[] ids, long[] lastIndex, long first, long width) => new(TensorParallelStepKind.Prefill, ids, lastIndex, first, width);

    /// <summary>A prefill chunk: ids [1, n] into row <paramref name="row"/> from position <paramref name="start"/>.</summary>
    public static TensorParallelStep Chunk(long[] ids, long row, long start) => new(TensorParallelStepKind.Chunk, ids, [], row, start);

    /// <summary>Copies the first <paramref name="length"/> cache positions of row <paramref name="from"/> to row <paramref name="to"/>.</summary>
    public static TensorParallelStep CopyRow(long from, long to, long length) => new(TensorParallelStepKind.CopyRow, [], [], from, to, length);

    /// <summary>Hidden states of ids [1, n] without a cache (/v1/embeddings).</summary>
    public static TensorParallelStep Hidden(long[] ids) => new(TensorParallelStepKind.Hidden, ids, []);

    /// <summary>The step as bytes.</summary>
    public byte[] Encode()
    {
        using var stream = new MemoryStream(16 + 8 * (Ids.Length + Positions.Length + 5));
        using (var w = new BinaryWriter(stream))
        {
            w.Write((byte)Kind);
            w.Write(A);
            w.Write(B);
            w.Write(C);
            w.Write(Ids.Length);
            foreach (var v in Ids) w.Write(v);
            w.Write(Positions.Length);
            foreach (var v in Positions) w.Write(v);
        }
        return stream.ToArray();
    }

    /// <summary>The step <see cref="Encode"/> wrote.</summary>
    public static TensorParallelStep Decode(byte[] bytes)
    {
        using var r = new BinaryReader(new MemoryStream(bytes));
        var kind = (TensorParallelStepKind)r.ReadByte();
        var (a, b, c) = (r.ReadInt64(), r.ReadInt64(), r.ReadInt64());
        var ids = new long[r.ReadInt32()];
        for (var i = 0; i < ids.Length; i++) ids[i] = r.ReadInt64();
        var positions = new long[r.ReadInt32()];
        for (var i = 0; i < positions.Length; i++) positions[i] = r.ReadInt64();
        return new TensorParallelStep(kind, ids, positions, a, b, c);
    }
}
