using System.Runtime.InteropServices;
using Osprey.Runtime;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Serving;

// Decode steps as CUDA graphs. At batch 1 a decode step is hundreds of small kernels whose launch cost (CPU side)
// is several times their GPU time; replaying a captured graph launches them all at once. A graph has fixed
// shapes, so there is one per (rows, keys) bucket: the running rows are padded up to the bucket (the padding
// rows are free slots, whose cache rows are rewritten by the prefill of whoever takes them next) and every row
// attends over the bucket's key length under its own mask. The step reads its inputs from static tensors that
// are refilled before each replay.
public sealed partial class InferenceEngine
{
    readonly Dictionary<(int Rows, int Keys), DecodeGraph> _graphs = [];
    bool _graphsOn;

    /// <summary>Graphs kept at most; shapes beyond this run eagerly (each graph holds its own memory pool).</summary>
    const int MaxGraphs = 32;

    /// <summary>Decode graphs captured so far (for profiles).</summary>
    internal int GraphCount => _graphs.Count;

    /// <summary>Why CUDA graphs are off for this engine, or null when they are on.</summary>
    public string? GraphsOffReason { get; private set; }

    void InitializeGraphs()
    {
        if (Model.Device.type != DeviceType.CUDA) GraphsOffReason = "the model is not on a CUDA device";
        else if (!Options.CudaGraphs) GraphsOffReason = "turned off (--enforce_eager)";
        // Every rank would have to capture and replay the same graphs in lockstep, NCCL calls included: not done yet.
        else if (Model.TensorParallel is not null) GraphsOffReason = "tensor-parallel ranks run their decode steps eagerly (graphs are not captured across ranks yet)";
        else if (Model.HasServingAdapters) GraphsOffReason = "LoRA adapters choose rows per step, which a captured graph cannot";
        else if (!CudaGraph.IsSupported(out var why)) GraphsOffReason = why;
        _graphsOn = GraphsOffReason is null;
    }

    void DisposeGraphs()
    {
        foreach (var g in _graphs.Values) g.Dispose();
        _graphs.Clear();
    }

    /// <summary>The smallest bucket of rows holding <paramref name="n"/>: powers of two, then steps of a quarter.</summary>
    int RowBucket(int n)
    {
        var b = 1;
        while (b < n && b < 8) b *= 2;
        if (b < n)
        {
            var step = 8;
            b = 8;
            while (b < n) { b += step; if (b >= step * 4) step *= 2; }
        }
        return Math.Min(b, Options.MaxBatchSize);
    }

    /// <summary>The key length a graph attends over: the next power of two from 128, at most max_model_len.</summary>
    int KeyBucket(int keys)
    {
        var k = 128;
        while (k < keys) k *= 2;
        return Math.Min(k, MaxModelLen);
    }

    /// <summary>
    /// Runs the decode step of rows [0, n) through a CUDA graph when graphs are on and one fits; returns logits
    /// [n, vocab] (a view of the graph's output, valid until the next step), or null to run the step eagerly.
    /// </summary>
    Tensor? DecodeByGraph(long[] ids, long[] positions, long[]? rope, int n, int keysNeeded, Tensor? deviceIds = null)
    {
        if (!_graphsOn) return null;
        var key = (RowBucket(n), KeyBucket(keysNeeded));
        if (key.Item2 < keysNeeded) return null;
        // A graph already captured for up to twice the rows and keys serves too (more padding, no capture now):
        // requests arrive at their own pace, and capturing every in-between shape costs 50–300 ms each time.
        if (!_graphs.TryGetValue(key, out var graph))
            graph = _graphs.Values.Where(g => g.Rows >= key.Item1 && g.Rows <= 2 * key.Item1 && g.Keys >= key.Item2 && g.Keys <= 2 * key.Item2)
                .OrderBy(g => (long)g.Rows * g.Keys).FirstOrDefault();
        if (graph is null)
        {
            if (_graphs.Count >= MaxGraphs) return null;
            graph = new DecodeGraph(key.Item1, key.Item2, Model.Device, Model.IsVisionLanguage);
            Fill(graph, ids, positions, rope, n, deviceIds);
            try
            {
                graph.Graph = new CudaGraph(Math.Max(Model.Device.index, 0));
                graph.Graph.Capture(() => Step(graph));
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException or ExternalException)
            {
                graph.Dispose();
                _graphsOn = false;
                GraphsOffReason = $"capture failed: {e.Message}";
                return null;
            }
            _graphs[key] = graph;
        }
        Fill(graph, ids, positions, rope, n, deviceIds);
        PhaseTimer.Mark(Model.Device, "inputs to the device");
        graph.Graph!.Replay();
        return graph.Logits!.narrow(0, 0, n);
    }

    /// <summary>The captured step: the static inputs through the model, logits kept in the graph's output tensor.</summary>
    void Step(DecodeGraph g)
    {
        using var scope = NewDisposeScope();
        var logits = Model.DecodeSlots(g.Ids, g.Positions, _pool, g.Keys, ropePositions: g.Rope).DetachFromDisposeScope();
        g.Logits?.Dispose();
        g.Logits = logits;
    }

    /// <summary>
    /// The graph's static inputs for rows [0, n): token ids from <paramref name="ids"/> on the host or, in a pipelined
    /// step, from <paramref name="deviceIds"/> ([n, 1], still on the device: the previous step's picks); positions from
    /// the host. Padding rows decode token 0 at position 0 of their (free) cache row.
    /// </summary>
    static void Fill(DecodeGraph g, long[] ids, long[] positions, long[]? rope, int n, Tensor? deviceIds = null)
    {
        Array.Copy(positions, g.HostPositions, n);
        Array.Clear(g.HostPositions, n, g.Rows - n);
        using var scope = NewDisposeScope();
        if (deviceIds is null)
        {
            Array.Copy(ids, g.HostIds, n);
            Array.Clear(g.HostIds, n, g.Rows - n);
            HostUpload.CopyInto(g.Ids, g.HostIds, HostUpload.PinnedDecode);
        }
        else
        {
            g.Ids.narrow(0, 0, n).copy_(deviceIds);
            if (g.Rows > n) g.Ids.narrow(0, n, g.Rows - n).zero_();
        }
        HostUpload.CopyInto(g.Positions, g.HostPositions, HostUpload.PinnedDecode);
        if (g.Rope is null || rope is null) return;
        // A vision-language model's graphs read rotary positions from their own input (padding rows at 0).
        Array.Copy(rope, g.HostPositions, n);
        HostUpload.CopyInto(g.Rope, g.HostPositions, HostUpload.PinnedDecode);
    }

    /// <summary>One captured decode step and its static tensors.</summary>
    sealed class DecodeGraph(int rows, int keys, Device device, bool rope) : IDisposable
    {
        public int Rows { get; } = rows;
        public int Keys { get; } = keys;
        public long[] HostIds { get; } = new long[rows];
        public long[] HostPositions { get; } = new long[rows];
        public Tensor Ids { get; } = zeros(rows, 1, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        public Tensor Positions { get; } = zeros(rows, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        /// <summary>Rotary positions (vision-language models only; text models rotate by <see cref="Positions"/>).</summary>
        public Tensor? Rope { get; } = rope ? zeros(rows, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope() : null;
        public Tensor? Logits { get; set; }
        public CudaGraph? Graph { get; set; }

        public void Dispose()
        {
            Graph?.Dispose();
            Logits?.Dispose();
            Ids.Dispose();
            Positions.Dispose();
            Rope?.Dispose();
        }
    }
}
