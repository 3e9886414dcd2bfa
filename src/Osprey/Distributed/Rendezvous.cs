using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Osprey.Distributed;

/// <summary>
/// The job's meeting point: rank 0 listens on MASTER_ADDR:MASTER_PORT and every other rank connects to it and says
/// which rank it is (a star, as torch's TCPStore). Its sockets carry the bootstrap (the NCCL unique id, the run folder)
/// and, for the CPU backend, the collectives themselves. A peer that closes its socket (it stopped or died) is an
/// error naming its rank, so no rank waits forever on a dead one.
/// </summary>
internal sealed class Rendezvous : IDisposable
{
    const int Magic = 0x4f535052; // "OSPR"
    readonly NetworkStream?[] _peers; // rank 0: one per other rank; others: [0] is rank 0
    readonly TcpListener? _listener;

    Rendezvous(int rank, int worldSize, NetworkStream?[] peers, TcpListener? listener)
    {
        Rank = rank;
        WorldSize = worldSize;
        _peers = peers;
        _listener = listener;
    }

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>Connects every rank of <paramref name="env"/>; waits at most <paramref name="timeout"/> for the others.</summary>
    /// <exception cref="OspreyException">The port is taken, rank 0 is unreachable, or a rank did not come in time.</exception>
    public static Rendezvous Join(DistributedEnvironment env, TimeSpan timeout)
    {
        var peers = new NetworkStream?[env.WorldSize];
        if (env.WorldSize == 1) return new Rendezvous(0, 1, peers, null);
        var deadline = DateTime.UtcNow + timeout;
        if (env.Rank == 0)
        {
            var listener = new TcpListener(IPAddress.Any, env.MasterPort);
            try
            {
                listener.Start(env.WorldSize);
            }
            catch (SocketException e)
            {
                throw new OspreyException($"rank 0 cannot listen on port {env.MasterPort} ({e.Message}); set MASTER_PORT to a free port.", e);
            }
            try
            {
                for (var joined = 1; joined < env.WorldSize; joined++)
                {
                    var accept = listener.AcceptTcpClientAsync();
                    if (!accept.Wait(Remaining(deadline)))
                        throw new OspreyException($"only {joined} of {env.WorldSize} ranks reached {env.MasterAddress}:{env.MasterPort} within {timeout.TotalSeconds:F0} s; start every worker (NPROC_PER_NODE × NNODES) with the same MASTER_ADDR and MASTER_PORT.");
                    var client = accept.Result;
                    client.NoDelay = true;
                    var stream = client.GetStream();
                    var hello = new byte[12];
                    ReadExactly(stream, hello, -1);
                    var (magic, rank, world) = (BinaryPrimitives.ReadInt32LittleEndian(hello), BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(4)), BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8)));
                    if (magic != Magic) throw new OspreyException($"something that is not an osprey worker connected to port {env.MasterPort}; choose another MASTER_PORT.");
                    if (world != env.WorldSize) throw new OspreyException($"rank {rank} has WORLD_SIZE={world}, rank 0 has {env.WorldSize}; start every worker with the same world size.");
                    if (rank <= 0 || rank >= world || peers[rank] is not null) throw new OspreyException($"two workers claim RANK={rank}; give each worker its own rank.");
                    peers[rank] = stream;
                }
            }
            catch
            {
                listener.Stop();
                foreach (var p in peers) p?.Dispose();
                throw;
            }
            // No more joiners: the port is free again for the next job.
            listener.Stop();
            return new Rendezvous(0, env.WorldSize, peers, null);
        }
        while (true)
        {
            var client = new TcpClient { NoDelay = true };
            try
            {
                if (client.ConnectAsync(env.MasterAddress, env.MasterPort).Wait(Remaining(deadline)))
                {
                    var stream = client.GetStream();
                    var hello = new byte[12];
                    BinaryPrimitives.WriteInt32LittleEndian(hello, Magic);
                    BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), env.Rank);
                    BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), env.WorldSize);
                    stream.Write(hello);
                    peers[0] = stream;
                    return new Rendezvous(env.Rank, env.WorldSize, peers, null);
                }
            }
            catch (AggregateException e) when (e.InnerException is SocketException)
            {
                // Rank 0 is not listening yet: try again until the deadline.
            }
            client.Dispose();
            if (DateTime.UtcNow >= deadline)
                throw new OspreyException($"rank {env.Rank} could not reach rank 0 at {env.MasterAddress}:{env.MasterPort} within {timeout.TotalSeconds:F0} s; check MASTER_ADDR/MASTER_PORT and that rank 0 started.");
            Thread.Sleep(100);
        }
    }

    static TimeSpan Remaining(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>Sends bytes to <paramref name="rank"/> (rank 0 to any; others only to 0).</summary>
    public void Send(int rank, ReadOnlySpan<byte> data)
    {
        try
        {
            Stream(rank).Write(data);
        }
        catch (IOException e)
        {
            throw Lost(rank, e);
        }
    }

    /// <summary>Receives exactly <paramref name="data"/>.Length bytes from <paramref name="rank"/>.</summary>
    public void Receive(int rank, Span<byte> data) => ReadExactly(Stream(rank), data, rank);

    NetworkStream Stream(int rank) => (Rank == 0 ? _peers[rank] : rank == 0 ? _peers[0] : null)
        ?? throw new InvalidOperationException($"rank {Rank} has no connection to rank {rank}");

    static void ReadExactly(NetworkStream stream, Span<byte> data, int rank)
    {
        try
        {
            stream.ReadExactly(data);
        }
        catch (Exception e) when (e is IOException or EndOfStreamException)
        {
            throw Lost(rank, e);
        }
    }

    static OspreyException Lost(int rank, Exception e) =>
        new(rank < 0 ? "a worker closed its connection during the rendezvous." : $"rank {rank} closed its connection (it stopped or died); this rank stops too.", e);

    /// <summary>Rank 0's <paramref name="value"/> on every rank (others pass anything, e.g. null).</summary>
    public byte[] Broadcast(byte[]? value)
    {
        Span<byte> size = stackalloc byte[4];
        if (Rank == 0)
        {
            ArgumentNullException.ThrowIfNull(value);
            BinaryPrimitives.WriteInt32LittleEndian(size, value.Length);
            for (var r = 1; r < WorldSize; r++)
            {
                Send(r, size);
                Send(r, value);
            }
            return value;
        }
        Receive(0, size);
        var result = new byte[BinaryPrimitives.ReadInt32LittleEndian(size)];
        Receive(0, result);
        return result;
    }

    /// <summary>Returns when every rank has called it.</summary>
    public void Barrier()
    {
        Span<byte> token = stackalloc byte[1];
        if (Rank == 0)
        {
            for (var r = 1; r < WorldSize; r++) Receive(r, token);
            for (var r = 1; r < WorldSize; r++) Send(r, token);
        }
        else if (WorldSize > 1)
        {
            Send(0, token);
            Receive(0, token);
        }
    }

    public void Dispose()
    {
        foreach (var p in _peers) p?.Dispose();
        _listener?.Stop();
    }
}
