using System.Collections;
using System.Globalization;

namespace Osprey.Distributed;

/// <summary>
/// The launch environment as torchrun and ms-swift define it. A launcher reads <c>NPROC_PER_NODE</c>, <c>NNODES</c>,
/// <c>NODE_RANK</c>, <c>MASTER_ADDR</c> and <c>MASTER_PORT</c>; a worker reads <c>RANK</c>, <c>LOCAL_RANK</c>,
/// <c>WORLD_SIZE</c> and <c>LOCAL_WORLD_SIZE</c> (set by Osprey's launcher, torchrun or a cluster scheduler).
/// </summary>
public sealed record DistributedEnvironment
{
    /// <summary>torchrun's default rendezvous port.</summary>
    public const int DefaultMasterPort = 29500;

    /// <summary>This worker's global rank (0 when not distributed).</summary>
    public int Rank { get; init; }

    /// <summary>This worker's rank on its node; picks the GPU (cuda:LOCAL_RANK).</summary>
    public int LocalRank { get; init; }

    /// <summary>All workers of the job (1 when not distributed).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Workers on this node.</summary>
    public int LocalWorldSize { get; init; } = 1;

    /// <summary>The host where rank 0 listens for the rendezvous.</summary>
    public string MasterAddress { get; init; } = "127.0.0.1";

    /// <summary>The rendezvous port on <see cref="MasterAddress"/>.</summary>
    public int MasterPort { get; init; } = DefaultMasterPort;

    /// <summary>True for a worker process (RANK and WORLD_SIZE are set).</summary>
    public bool IsWorker { get; init; }

    /// <summary>Launcher side: workers to start on this node (NPROC_PER_NODE), or null when none was asked for.</summary>
    public int? ProcessesPerNode { get; init; }

    /// <summary>Launcher side: nodes in the job (NNODES, default 1).</summary>
    public int Nodes { get; init; } = 1;

    /// <summary>Launcher side: this node's index (NODE_RANK, default 0).</summary>
    public int NodeRank { get; init; }

    /// <summary>True when this process should start workers instead of training itself: NPROC_PER_NODE is set and RANK is not.</summary>
    public bool IsLaunchRequested => !IsWorker && ProcessesPerNode is not null;

    /// <summary>This process's environment.</summary>
    public static DistributedEnvironment Current => From(Environment.GetEnvironmentVariables());

    /// <summary>Reads the variables; a malformed one is an error naming it.</summary>
    /// <exception cref="OspreyException">A variable is not a number or out of range.</exception>
    public static DistributedEnvironment From(IDictionary variables)
    {
        string? Get(string name) => variables[name] is string s && s.Trim().Length > 0 ? s.Trim() : null;
        int? Int(string name, int min)
        {
            if (Get(name) is not { } text) return null;
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min)
                throw new OspreyException($"the environment variable {name}='{text}' is not an integer ≥ {min}; fix or unset it.");
            return v;
        }
        var rank = Int("RANK", 0);
        var world = Int("WORLD_SIZE", 1);
        var isWorker = rank is not null && world is not null;
        if (isWorker && rank >= world) throw new OspreyException($"RANK={rank} is not below WORLD_SIZE={world}; each worker needs a rank 0 … WORLD_SIZE − 1.");
        var nodes = Int("NNODES", 1) ?? 1;
        var nodeRank = Int("NODE_RANK", 0) ?? 0;
        if (nodeRank >= nodes) throw new OspreyException($"NODE_RANK={nodeRank} is not below NNODES={nodes}; number the nodes 0 … NNODES − 1.");
        var perNode = Int("NPROC_PER_NODE", 1);
        // NNODES > 1 without NPROC_PER_NODE still launches: one worker per node.
        if (perNode is null && nodes > 1) perNode = 1;
        return new DistributedEnvironment
        {
            IsWorker = isWorker,
            Rank = isWorker ? rank!.Value : 0,
            WorldSize = isWorker ? world!.Value : 1,
            LocalRank = isWorker ? Int("LOCAL_RANK", 0) ?? rank!.Value : 0,
            LocalWorldSize = isWorker ? Int("LOCAL_WORLD_SIZE", 1) ?? world!.Value : 1,
            MasterAddress = Get("MASTER_ADDR") ?? "127.0.0.1",
            MasterPort = Int("MASTER_PORT", 1) ?? DefaultMasterPort,
            ProcessesPerNode = perNode,
            Nodes = nodes,
            NodeRank = nodeRank,
        };
    }
}
