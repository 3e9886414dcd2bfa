using System.Text.RegularExpressions;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) exactly as torch.optim.AdamW computes it: decoupled decay p ← p·(1 − lr·wd),
/// m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
/// </summary>
/// <remarks>
/// Parameters with the same decay and learning-rate scale form a group whose float32 master weights and moments live
/// in one flat buffer each, so an update is a handful of kernels whatever the number of tensors (a LoRA model has
/// hundreds; one launch per tensor per operation cost more than the update itself). Float32 parameters added as
/// relocatable (LoRA matrices) are re-pointed into the master buffer, so nothing is copied back; relocatable bf16/fp16
/// ones into one flat buffer of their dtype that a single copy refreshes from the master; others (model weights, which
/// may share storage with fused buffers) get the master's values copied back one by one after each update. Gradients are gathered into one flat float32 tensor per group per step.
/// </remarks>
public sealed partial class AdamW : IDisposable, ILayerResidency
{
    readonly List<Slot> _slots = [];
    List<Group>? _groups;
    ICollectives? _collectives;
    ZeroStage _stage;
    bool _offload;
    bool _overlap; // data parallel: each decoder layer's gradients are all-reduced as soon as its backward is done
    readonly List<(ICollectiveWork Work, List<Tensor> Views)> _inFlight = [];
    long _reducedDuringBackward;

    sealed record Slot(string Name, Tensor Parameter, double LrScale, double WeightDecay, bool Relocatable);

    sealed class Group
    {
        public required List<Slot> Slots { get; init; }
        public required double LrScale { get; init; }
        public required double WeightDecay { get; init; }
        public required Tensor Master { get; init; }
        public required Tensor ExpAvg { get; init; }
        public required Tensor ExpAvgSq { get; init; }
        public required long[] Offsets { get; init; }
        public required bool[] Relocated { get; init; }

        /// <summary>Each parameter's shape when added (a released ZeRO-3 parameter has none of its own).</summary>
        public long[][] Shapes { get; init; } = [];
        public Tensor? Compute { get; set; }
        public Tensor? Grad { get; set; }

        /// <summary>ZeRO: how the flat buffer is split over ranks; Master/ExpAvg/ExpAvgSq then hold this rank's shard only.</summary>
        public Partition? Partition { get; init; }

        /// <summary>ZeRO-3: the decoder layer whose weights these are (gathered before it runs, released after); −1: always present.</summary>
        public int Unit { get; init; } = -1;

        /// <summary>ZeRO-3: this rank's shard of the step's summed gradients, accumulated layer by layer during backward.</summary>
        public Tensor? GradAccum { get; set; }

        /// <summary>Data parallel: which parameters' gradients are already in <see cref="Grad"/>, all-reduced during the backward pass.</summary>
        public bool[]? Reduced { get; set; }

        /// <summary>ZeRO: the whole master and moments, all-gathered by <see cref="Consolidate"/> for a checkpoint.</summary>
        public (Tensor Master, Tensor ExpAvg, Tensor ExpAvgSq)? Full { get; set; }

        public Tensor View(Tensor flat, int i) => Shapes.Length > 0
            ? flat.narrow(0, Offsets[i], Shapes[i].Aggregate(1L, (a, b) => a * b)).view(Shapes[i])
            : flat.narrow(0, Offsets[i], Slots[i].Parameter.numel()).view(Slots[i].Parameter.shape);
    }

    /// <summary>Creates the optimizer with β1, β2, ε.</summary>
    public AdamW(double beta1, double beta2, double epsilon)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
    }

    /// <summary>β1.</summary>
    public double Beta1 { get; }

    /// <summary>β2.</summary>
    public double Beta2 { get; }

    /// <summary>ε.</summary>
    public double Epsilon { get; }

    /// <summary>Updates taken so far (t).</summary>
    public long StepCount { get; private set; }

    /// <summary>The parameter names, in the order they were added.</summary>
    public IEnumerable<string> Names => _slots.Select(s => s.Name);

    /// <summary>
    /// Adds a trainable parameter; its learning rate is the step's rate × <paramref name="lrScale"/>. A
    /// <paramref name="relocatable"/> float32 parameter (one that shares storage with nothing else) is moved into the
    /// optimizer's flat master buffer when the first update is prepared.
    /// </summary>
    public void Add(string name, Tensor parameter, double weightDecay, double lrScale = 1.0, bool relocatable = false)
    {
        if (_groups is not null) throw new InvalidOperationException("parameters must be added before the first step");
        _slots.Add(new Slot(name, parameter, lrScale, weightDecay, relocatable));
    }

    /// <summary>
    /// Trains over the ranks of <paramref name="collectives"/>: gradients are summed over ranks before clipping; with
    /// <see cref="ZeroStage.Zero2"/> (or 3) each rank keeps only its shard of the float32 master and moments (in CPU
    /// memory with <paramref name="offload"/>), gets its shard of the summed gradients by reduce-scatter, updates it and
    /// all-gathers the new weights. A group of one goes through the same calls, each then the identity.
    /// </summary>
    public void Distribute(ICollectives collectives, ZeroStage stage, bool offload)
    {
        if (_groups is not null) throw new InvalidOperationException("distribute before the first step");
        _collectives = collectives;
        _stage = stage;
        _offload = offload && stage != ZeroStage.None;
        // OSPREY_OVERLAP_GRAD_REDUCE=0 turns the per-layer all-reduce off; =1 turns it on for one rank too (a check of the
        // side-stream path on a single GPU: over one rank the sum is the identity, so the losses must not move).
        var setting = Environment.GetEnvironmentVariable("OSPREY_OVERLAP_GRAD_REDUCE");
        _overlap = stage == ZeroStage.None && setting != "0" && (collectives.WorldSize > 1 || setting == "1");
        if (stage == ZeroStage.Zero3)
        {
            // The weights are sharded from the start: build the shards now and let every layer's weights go.
            _groups = ShardedGroups();
            foreach (var unit in Units()) Release(unit);
        }
    }

    /// <summary>The residency hook <see cref="CausalLM.ForwardBackward"/> takes: this optimizer under ZeRO-3, else null.</summary>
    public ILayerResidency? Residency => _stage == ZeroStage.Zero3 && _collectives is not null ? this : null;

    /// <summary>
    /// The hook a training backward pass takes: <see cref="Residency"/> under ZeRO-3; with plain data parallel over
    /// several ranks, this optimizer on the step's <paramref name="finalBackward"/> (each rank's last micro-batch), so
    /// that each decoder layer's gradients are all-reduced while the layers below it are still in their backward pass
    /// (earlier micro-batches only accumulate, as DDP's no_sync). Every rank must pass true for the same steps, or their
    /// collectives would not pair up: a step where some rank has no micro-batch passes false everywhere.
    /// </summary>
    public ILayerResidency? TrainingHook(bool finalBackward) => Residency ?? (_overlap && finalBackward ? this : null);

    /// <summary>Gradient elements all-reduced during the last step's backward pass, and in all (data parallel; zeros otherwise).</summary>
    public (long DuringBackward, long Total) LastReduceSplit { get; private set; }

    [GeneratedRegex(@"(?:^|\.)layers\.(\d+)\.")]
    private static partial Regex LayerPattern();

    /// <summary>ZeRO-3: the decoder layer a parameter belongs to (−1 for embeddings, the final norm and the head).</summary>
    int UnitOf(string name) => _stage == ZeroStage.Zero3 ? DecoderLayerOf(name) : -1;

    /// <summary>
    /// The decoder layer a parameter belongs to by its name (<c>…layers.N.…</c>), or −1: embeddings, the final norm, the
    /// head, and a vision tower's blocks, whose gradients are complete only after the whole backward pass.
    /// </summary>
    internal static int DecoderLayerOf(string name)
    {
        if (name.Contains("vision", StringComparison.Ordinal) || name.Contains("visual", StringComparison.Ordinal)) return -1;
        var m = LayerPattern().Match(name);
        return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    IEnumerable<int> Units() => (_groups ?? []).Select(g => g.Unit).Where(u => u >= 0).Distinct();

    readonly HashSet<int> _present = [];
    readonly Dictionary<int, List<(Group Group, Tensor Full, Tensor Shard, ICollectiveWork Work)>> _gathering = [];
    (bool Backward, int Layer)? _lastHook; // the previous hook call: tells a forward pass from a backward one

    /// <summary>ZeRO-3, for tests: told "start N" when layer N's all-gather is started, "wait N" when it is waited for and "run N" when the layer is about to run.</summary>
    internal Action<string>? GatherTrace { get; set; }

    /// <inheritdoc />
    public void BeforeLayer(int layer)
    {
        if (_stage != ZeroStage.Zero3) return;
        Ensure(layer);
        // Prefetch the layer that runs next, its all-gather overlapping this layer's work: in the forward pass the one
        // after (this call follows the forward of the layer before, or starts a pass at layer 0), in the backward pass's
        // recompute the one before (this call follows the forward of this same last layer, or the backward of the next).
        var forward = _lastHook is not { } last ? layer == 0
            : !last.Backward ? last.Layer == layer - 1 || (layer == 0 && last.Layer != 0)
            : layer == 0 && last.Layer == 0;
        var next = forward ? layer + 1 : layer - 1;
        if (next >= 0 && Units().Contains(next)) StartGather(next);
        GatherTrace?.Invoke($"run {layer}");
    }

    /// <inheritdoc />
    public void AfterLayerForward(int layer)
    {
        if (_stage != ZeroStage.Zero3) return;
        _lastHook = (false, layer);
        Release(layer);
    }

    /// <inheritdoc />
    public void AfterLayerBackward(int layer)
    {
        if (_stage != ZeroStage.Zero3)
        {
            if (_overlap) StartLayerReduce(layer);
            return;
        }
        _lastHook = (true, layer);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var g in Groups().Where(g => g.Unit == layer))
        {
            var shard = Reduce(g, GatherGradients(g)!);
            if (g.GradAccum is null) g.GradAccum = shard.DetachFromDisposeScope();
            else g.GradAccum.add_(shard);
            foreach (var slot in g.Slots)
            {
                using var grad = slot.Parameter.grad;
                if (grad is not null) slot.Parameter.grad = null;
            }
        }
        Release(layer);
    }

    /// <summary>
    /// Data parallel: copies decoder layer <paramref name="layer"/>'s gradients into their places in each group's flat
    /// float32 gradient and starts their all-reduce, which runs while the layers below are in their backward pass.
    /// </summary>
    void StartLayerReduce(int layer)
    {
        using var _ = no_grad();
        foreach (var g in Groups())
        {
            if (g.Partition is not null) continue;
            var mine = Enumerable.Range(0, g.Slots.Count).Where(i => DecoderLayerOf(g.Slots[i].Name) == layer && g.Reduced?[i] != true).ToList();
            if (mine.Count == 0) continue;
            if (g.Grad is null)
            {
                // Called inside the forward pass's dispose scopes: the buffer lives until the step's update.
                g.Grad = empty(g.Master.numel(), dtype: ScalarType.Float32, device: g.Slots[0].Parameter.device).DetachFromDisposeScope();
                g.Reduced = new bool[g.Slots.Count];
            }
            var views = CopyGradients(g, mine);
            _inFlight.Add((_collectives!.AllReduceSumAsync(views), views));
            _reducedDuringBackward += views.Sum(v => v.numel());
        }
    }

    /// <summary>
    /// Copies the gradients of slots <paramref name="indices"/> into their places in <c>g.Grad</c> (zeros for a parameter
    /// that got none, so every rank sums the same layout), marks them reduced, and returns views of the contiguous runs
    /// they cover, for one collective.
    /// </summary>
    static List<Tensor> CopyGradients(Group g, List<int> indices)
    {
        var runs = new List<Tensor>();
        long runStart = -1, runEnd = -1;
        foreach (var i in indices)
        {
            using (var view = g.View(g.Grad!, i))
            {
                using var grad = g.Slots[i].Parameter.grad;
                if (grad is null) view.zero_();
                else view.copy_(grad);
            }
            g.Reduced![i] = true;
            var start = g.Offsets[i];
            var end = start + g.Slots[i].Parameter.numel();
            if (start == runEnd) { runEnd = end; continue; }
            if (runStart >= 0) runs.Add(g.Grad!.narrow(0, runStart, runEnd - runStart).DetachFromDisposeScope());
            (runStart, runEnd) = (start, end);
        }
        // Detached: the TCP backend reads them on its own thread after the caller's scope has ended.
        if (runStart >= 0) runs.Add(g.Grad!.narrow(0, runStart, runEnd - runStart).DetachFromDisposeScope());
        return runs;
    }

    /// <summary>Waits for the all-reduces started during the backward pass and frees the views they used.</summary>
    void FinishInFlight()
    {
        foreach (var (work, views) in _inFlight)
        {
            work.Wait();
            foreach (var v in views) v.Dispose();
        }
        _inFlight.Clear();
    }

    /// <summary>ZeRO-3: starts the all-gather of layer <paramref name="unit"/>'s weights from the master shards (not yet usable).</summary>
    void StartGather(int unit)
    {
        if (_present.Contains(unit) || _gathering.ContainsKey(unit)) return;
        using var _ = no_grad();
        var started = new List<(Group, Tensor, Tensor, ICollectiveWork)>();
        foreach (var g in Groups().Where(g => g.Unit == unit))
        {
            var device = g.Slots[0].Parameter.device;
            // Both buffers outlive the caller's dispose scopes: they are used until the gather is waited for.
            var shard = (g.Master.device.type == device.type ? g.Master.alias() : g.Master.to(device, non_blocking: true)).DetachFromDisposeScope();
            var full = empty(g.Partition!.PaddedLength, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
            started.Add((g, full, shard, _collectives!.AllGatherAsync(shard, full)));
        }
        _gathering[unit] = started;
        GatherTrace?.Invoke($"start {unit}");
    }

    /// <summary>ZeRO-3: makes layer <paramref name="unit"/>'s weights present: waits for (or starts and waits for) their all-gather.</summary>
    void Ensure(int unit)
    {
        if (_present.Contains(unit)) return;
        StartGather(unit);
        FinishGather(unit, install: true);
        _present.Add(unit);
    }

    /// <summary>Waits for layer <paramref name="unit"/>'s started all-gather and, with <paramref name="install"/>, points its parameters at the result.</summary>
    void FinishGather(int unit, bool install)
    {
        if (!_gathering.Remove(unit, out var started)) return;
        GatherTrace?.Invoke($"{(install ? "wait" : "drop")} {unit}");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (g, full, shard, work) in started)
        {
            work.Wait();
            if (install)
                for (var i = 0; i < g.Slots.Count; i++)
                {
                    var p = g.Slots[i].Parameter;
                    var shape = ShapeOf(g, i);
                    var buffer = full.narrow(0, g.Offsets[i], shape.Aggregate(1L, (a, b) => a * b)).view(shape).to_type(p.dtype, copy: true);
                    p.set_(buffer);
                }
            full.Dispose();
            shard.Dispose();
        }
    }

    /// <summary>ZeRO-3: drops layer <paramref name="unit"/>'s weights (their values live on in the master shards).</summary>
    void Release(int unit)
    {
        FinishGather(unit, install: false); // a prefetch nobody used
        _present.Remove(unit);
        using var _ = no_grad();
        foreach (var g in (_groups ?? []).Where(g => g.Unit == unit))
            foreach (var slot in g.Slots)
            {
                using var nothing = empty(0, dtype: slot.Parameter.dtype, device: slot.Parameter.device);
                slot.Parameter.set_(nothing);
            }
    }

    /// <summary>A parameter's shape as added (its tensor may be released, and then has none).</summary>
    static long[] ShapeOf(Group g, int i) => g.Shapes[i];

    bool Sharded => _collectives is not null && _stage != ZeroStage.None;

    /// <summary>
    /// Builds the float32 masters and flat buffers now rather than at the first step. Relocatable parameters (LoRA
    /// matrices) move into those buffers here, once, and every later step updates them in place; code that captures a
    /// parameter's storage (the rollout engine's CUDA graphs) must start after this, or it would keep reading the storage
    /// the parameter left. The values are unchanged, so calling it early changes no result.
    /// </summary>
    public void Prepare() => _ = Groups();

    List<Group> Groups()
    {
        if (Sharded) return _groups ??= ShardedGroups();
        if (_groups is not null) return _groups;
        using var _ = no_grad();
        _groups = [];
        foreach (var key in _slots.Select(s => (s.WeightDecay, s.LrScale)).Distinct())
        {
            var slots = _slots.Where(s => (s.WeightDecay, s.LrScale) == key).ToList();
            var offsets = new long[slots.Count];
            long total = 0;
            for (var i = 0; i < slots.Count; i++) { offsets[i] = total; total += slots[i].Parameter.numel(); }
            var device = slots[0].Parameter.device;
            // Built lazily, maybe inside a caller's dispose scope: the buffers must outlive it.
            var master = empty(total, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
            var group = new Group
            {
                Slots = slots, WeightDecay = key.WeightDecay, LrScale = key.LrScale, Master = master,
                ExpAvg = zeros(total, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope(),
                ExpAvgSq = zeros(total, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope(),
                Offsets = offsets, Relocated = new bool[slots.Count],
            };
            var dtype = slots[0].Parameter.dtype;
            var lowPrecisionFlat = dtype != ScalarType.Float32 && slots.All(x => x.Relocatable && x.Parameter.dtype == dtype && x.Parameter.is_contiguous());
            if (lowPrecisionFlat) group.Compute = empty(total, dtype: dtype, device: device).DetachFromDisposeScope();
            for (var i = 0; i < slots.Count; i++)
            {
                var p = slots[i].Parameter;
                using var view = group.View(master, i);
                view.copy_(p);
                if (group.Compute is not null)
                {
                    // bf16/fp16 LoRA matrices: moved into one flat buffer that a single copy refreshes from the master.
                    using var computeView = group.View(group.Compute, i);
                    computeView.copy_(p);
                    p.set_(computeView);
                }
                else if (slots[i].Relocatable && p.dtype == ScalarType.Float32 && p.is_contiguous())
                {
                    p.set_(view);
                    group.Relocated[i] = true;
                }
            }
            _groups.Add(group);
        }
        return _groups;
    }

    /// <summary>ZeRO groups: each rank's shard of the float32 master (initialised from the weights) and zero moments.</summary>
    List<Group> ShardedGroups()
    {
        using var _ = no_grad();
        var comm = _collectives!;
        var groups = new List<Group>();
        foreach (var key in _slots.Select(s => (s.WeightDecay, s.LrScale, Unit: UnitOf(s.Name))).Distinct())
        {
            using var scope = NewDisposeScope();
            var slots = _slots.Where(s => (s.WeightDecay, s.LrScale, UnitOf(s.Name)) == key).ToList();
            var offsets = new long[slots.Count];
            long total = 0;
            for (var i = 0; i < slots.Count; i++) { offsets[i] = total; total += slots[i].Parameter.numel(); }
            var partition = new Partition(total, comm.WorldSize);
            var device = slots[0].Parameter.device;
            var stateDevice = _offload ? CPU : device;
            var flat = zeros(partition.PaddedLength, dtype: ScalarType.Float32, device: device);
            for (var i = 0; i < slots.Count; i++) flat.narrow(0, offsets[i], slots[i].Parameter.numel()).copy_(slots[i].Parameter.reshape(-1));
            var master = flat.narrow(0, partition.Start(comm.Rank), partition.ShardLength).to(stateDevice, copy: true);
            if (_offload && device.type == DeviceType.CUDA) master = master.pin_memory();
            groups.Add(new Group
            {
                Slots = slots, WeightDecay = key.WeightDecay, LrScale = key.LrScale,
                Master = master.DetachFromDisposeScope(),
                ExpAvg = Zeros(partition.ShardLength, stateDevice, device).DetachFromDisposeScope(),
                ExpAvgSq = Zeros(partition.ShardLength, stateDevice, device).DetachFromDisposeScope(),
                Offsets = offsets, Relocated = new bool[slots.Count], Partition = partition,
                Unit = key.Unit, Shapes = slots.Select(x => x.Parameter.shape).ToArray(),
            });
        }
        return groups;
    }

    /// <summary>Zeros for optimizer state; pinned when offloaded from a GPU, so copies to and from the device are asynchronous DMA.</summary>
    static Tensor Zeros(long n, Device stateDevice, Device device)
    {
        var t = zeros(n, dtype: ScalarType.Float32, device: stateDevice);
        if (stateDevice.type == DeviceType.CPU && device.type == DeviceType.CUDA)
        {
            var pinned = t.pin_memory();
            t.Dispose();
            return pinned;
        }
        return t;
    }

    /// <summary>
    /// The group's gradients as one flat float32 tensor (null when some parameter got no gradient). With several ranks
    /// a missing gradient counts as zeros, so every rank sums tensors of the same layout.
    /// </summary>
    Tensor? GatherGradients(Group g)
    {
        if (_collectives is null || (_collectives.WorldSize == 1 && !Sharded)) return Gather(g);
        var parts = new List<Tensor>(g.Slots.Count);
        try
        {
            foreach (var s in g.Slots)
                parts.Add(s.Parameter.grad is { } grad ? grad.reshape(-1) : zeros(g.Shapes.Length > 0 ? g.Shapes[parts.Count].Aggregate(1L, (a, b) => a * b) : s.Parameter.numel(), dtype: s.Parameter.dtype, device: s.Parameter.device));
            var flat = cat(parts, 0);
            return flat.dtype == ScalarType.Float32 ? flat : flat.to_type(ScalarType.Float32);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>Sums the flat gradient over ranks: all-reduce in buckets (data parallel) or reduce-scatter to this rank's shard (ZeRO).</summary>
    Tensor Reduce(Group g, Tensor flat)
    {
        var comm = _collectives!;
        if (g.Partition is not { } partition)
        {
            var buckets = GradientBuckets.Layout(flat.numel()).Select(b => flat.narrow(0, b.Offset, b.Length)).ToList();
            comm.AllReduceSum(buckets);
            foreach (var b in buckets) b.Dispose();
            return flat;
        }
        using var padded = partition.PaddedLength == flat.numel() ? flat.alias() : cat([flat, zeros(partition.PaddedLength - flat.numel(), dtype: flat.dtype, device: flat.device)], 0);
        var shard = empty(partition.ShardLength, dtype: ScalarType.Float32, device: flat.device);
        comm.ReduceScatterSum(padded, shard);
        flat.Dispose();
        return shard;
    }

    /// <summary>The group's gradients as one flat float32 tensor (null when some parameter got no gradient).</summary>
    static Tensor? Gather(Group g)
    {
        var parts = new List<Tensor>(g.Slots.Count);
        try
        {
            foreach (var s in g.Slots)
            {
                var grad = s.Parameter.grad;
                if (grad is null) return null;
                parts.Add(grad.reshape(-1));
            }
            var flat = cat(parts, 0);
            return flat.dtype == ScalarType.Float32 ? flat : flat.to_type(ScalarType.Float32);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// The L2 norm of all gradients together (float32), and, when it exceeds <paramref name="maxNorm"/> &gt; 0,
    /// every gradient scaled by maxNorm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm
    /// before clipping as a one-element tensor (no host sync).
    /// </summary>
    public Tensor ClipGradients(double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var norms = new List<Tensor>();
        FinishInFlight();
        long elements = 0;
        foreach (var g in Groups())
        {
            if (g.Reduced is { } reduced)
            {
                // Data parallel: the decoder layers' gradients were all-reduced during the backward pass; the rest
                // (embeddings, final norm, head: complete only at its end) join them now, in the same layout on every rank.
                var rest = Enumerable.Range(0, g.Slots.Count).Where(i => !reduced[i]).ToList();
                if (rest.Count > 0)
                {
                    var views = CopyGradients(g, rest);
                    _collectives!.AllReduceSum(views);
                    foreach (var v in views) v.Dispose();
                }
                g.Reduced = null;
                elements += g.Grad!.numel();
                norms.Add(g.Grad.norm());
                continue;
            }
            g.Grad?.Dispose();
            if (g.Unit >= 0)
            {
                // ZeRO-3: reduce-scattered layer by layer during backward.
                g.Grad = g.GradAccum ?? zeros(g.Partition!.ShardLength, dtype: ScalarType.Float32, device: g.Slots[0].Parameter.device).DetachFromDisposeScope();
                g.GradAccum = null;
                norms.Add(g.Grad.norm());
                continue;
            }
            var flat = GatherGradients(g);
            if (flat is not null && _collectives is not null) flat = Reduce(g, flat);
            g.Grad = flat?.DetachFromDisposeScope();
            elements += flat?.numel() ?? 0;
            if (g.Grad is not null) norms.Add(g.Grad.norm());
            else
                foreach (var s in g.Slots)
                    if (s.Parameter.grad is { } grad) norms.Add(grad.to_type(ScalarType.Float32).norm());
        }
        if (_overlap) LastReduceSplit = (_reducedDuringBackward, elements);
        _reducedDuringBackward = 0;
        Tensor total;
        if (Sharded)
        {
            // Each rank holds a shard: the global norm is √(Σ over ranks of the shards' squared norms).
            var squares = norms.Count == 0 ? zeros(1, dtype: ScalarType.Float32, device: Groups()[0].Master.device) : stack(norms).square().sum().reshape(1);
            var device = Groups()[0].Slots[0].Parameter.device;
            squares = squares.to(device);
            _collectives!.AllReduceSum([squares]);
            total = squares.sqrt().reshape(1);
        }
        else
        {
            total = norms.Count == 0 ? zeros(1, dtype: ScalarType.Float32) : stack(norms).norm();
        }
        if (maxNorm > 0)
        {
            using var tiny = 1e-6.ToScalar();
            using var limit = maxNorm.ToScalar();
            using var one = 1.0.ToScalar();
            using var shifted = total + tiny;
            var coef = full_like(shifted, limit).div_(shifted).clamp_max(one);
            foreach (var g in Groups())
            {
                if (g.Grad is not null) g.Grad.mul_(coef);
                else
                    foreach (var s in g.Slots) s.Parameter.grad?.mul_(coef.to_type(s.Parameter.grad.dtype));
            }
        }
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>One update at base rate <paramref name="lr"/> with the current gradients; parameters without a gradient are left alone.</summary>
    public void Step(double lr)
    {
        StepCount++;
        foreach (var unit in Units().ToList()) Release(unit);
        using var _ = no_grad();
        var bc1 = 1 - Math.Pow(Beta1, StepCount);
        var bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        foreach (var g in Groups())
        {
            using var scope = NewDisposeScope();
            var rate = lr * g.LrScale;
            if (g.Partition is { } partition)
            {
                StepShard(g, partition, rate, bc1, bc2Sqrt);
                g.Grad?.Dispose();
                g.Grad = null;
                continue;
            }
            var grad = g.Grad ?? Gather(g);
            if (grad is not null)
            {
                Update(g.Master, g.ExpAvg, g.ExpAvgSq, grad, rate, g.WeightDecay, bc1, bc2Sqrt);
                if (g.Compute is not null) g.Compute.copy_(g.Master);
                else
                    for (var i = 0; i < g.Slots.Count; i++)
                        if (!g.Relocated[i]) g.Slots[i].Parameter.copy_(g.View(g.Master, i));
            }
            else
            {
                // Some parameter got no gradient this step: update the others one by one, as torch skips such tensors.
                for (var i = 0; i < g.Slots.Count; i++)
                {
                    var pg = g.Slots[i].Parameter.grad;
                    if (pg is null) continue;
                    var master = g.View(g.Master, i);
                    Update(master, g.View(g.ExpAvg, i), g.View(g.ExpAvgSq, i), pg.to_type(ScalarType.Float32), rate, g.WeightDecay, bc1, bc2Sqrt);
                    if (!g.Relocated[i]) g.Slots[i].Parameter.copy_(master);
                }
            }
            g.Grad?.Dispose();
            g.Grad = null;
        }
    }

    /// <summary>ZeRO: updates this rank's shard (on the CPU when offloaded) and all-gathers the new weights into every rank's parameters.</summary>
    void StepShard(Group g, Partition partition, double rate, double bc1, double bc2Sqrt)
    {
        var device = g.Slots[0].Parameter.device;
        var grad = g.Grad ?? throw new InvalidOperationException("ClipGradients must run before Step on sharded groups");
        var local = g.Master.device.type == grad.device.type ? grad : grad.to(g.Master.device);
        Update(g.Master, g.ExpAvg, g.ExpAvgSq, local, rate, g.WeightDecay, bc1, bc2Sqrt);
        // ZeRO-3: the layer's weights are gathered from the new shards when it next runs.
        if (g.Unit >= 0) return;
        var shard = g.Master.device.type == device.type ? g.Master : g.Master.to(device, non_blocking: true);
        var full = empty(partition.PaddedLength, dtype: ScalarType.Float32, device: device);
        _collectives!.AllGather(shard, full);
        for (var i = 0; i < g.Slots.Count; i++)
        {
            var p = g.Slots[i].Parameter;
            p.copy_(full.narrow(0, g.Offsets[i], p.numel()).view(p.shape));
        }
    }

    /// <summary>
    /// ZeRO: all-gathers the whole float32 master and moments on every rank (a collective: all ranks call it) so that
    /// <see cref="State"/> and <see cref="Master"/> see the consolidated state a checkpoint needs;
    /// <see cref="ReleaseConsolidated"/> frees it. Nothing to do without sharding.
    /// </summary>
    public void Consolidate()
    {
        if (!Sharded) return;
        using var _ = no_grad();
        // ZeRO-3: a checkpoint writes whole weights, so every layer is gathered until ReleaseConsolidated.
        foreach (var unit in Units().ToList()) Ensure(unit);
        foreach (var g in Groups())
        {
            ReleaseFull(g);
            var device = g.Slots[0].Parameter.device;
            Tensor All(Tensor shard)
            {
                using var onDevice = shard.to(device, copy: true);
                var full = empty(g.Partition!.PaddedLength, dtype: ScalarType.Float32, device: device);
                _collectives!.AllGather(onDevice, full);
                return full.DetachFromDisposeScope();
            }
            g.Full = (All(g.Master), All(g.ExpAvg), All(g.ExpAvgSq));
        }
    }

    /// <summary>Frees what <see cref="Consolidate"/> gathered.</summary>
    public void ReleaseConsolidated()
    {
        if (_groups is null) return;
        foreach (var g in _groups) ReleaseFull(g);
        foreach (var unit in Units().ToList()) Release(unit);
    }

    static void ReleaseFull(Group g)
    {
        if (g.Full is not { } full) return;
        full.Master.Dispose();
        full.ExpAvg.Dispose();
        full.ExpAvgSq.Dispose();
        g.Full = null;
    }

    /// <summary>The whole master/moments of a group: the buffers themselves, or (ZeRO) the consolidated copies.</summary>
    static (Tensor Master, Tensor ExpAvg, Tensor ExpAvgSq) Whole(Group g) =>
        g.Partition is null ? (g.Master, g.ExpAvg, g.ExpAvgSq)
        : g.Full ?? throw new InvalidOperationException("call Consolidate on every rank before reading a sharded optimizer's state");

    void Update(Tensor master, Tensor expAvg, Tensor expAvgSq, Tensor grad, double rate, double decay, double bc1, double bc2Sqrt) =>
        AdamWUpdate.Apply(master, expAvg, expAvgSq, grad, rate, decay, bc1, bc2Sqrt, Beta1, Beta2, Epsilon);

    /// <summary>Drops every gradient (the next backward pass writes fresh ones instead of adding).</summary>
    public void ZeroGrad()
    {
        FinishInFlight();
        _reducedDuringBackward = 0;
        foreach (var s in _slots)
        {
            using var g = s.Parameter.grad;
            if (g is not null) s.Parameter.grad = null;
        }
        if (_groups is null) return;
        foreach (var g in _groups)
        {
            g.Grad?.Dispose();
            g.Grad = null;
            g.Reduced = null;
        }
    }

    /// <summary>For tests: parameter <paramref name="name"/>'s step gradient (summed over ranks, clipped) from <see cref="ClipGradients"/>'s buffers; a sharded group must be of one rank.</summary>
    internal float[] GradientOf(string name)
    {
        foreach (var g in Groups())
            for (var i = 0; i < g.Slots.Count; i++)
                if (g.Slots[i].Name == name)
                {
                    using var view = g.View(g.Grad ?? throw new InvalidOperationException($"{name} has no step gradient"), i);
                    return view.data<float>().ToArray();
                }
        throw new ArgumentException($"no parameter named '{name}'", nameof(name));
    }

    /// <summary>The float32 master of parameter <paramref name="name"/> (a view into the optimizer's buffer; valid until the next step).</summary>
    public Tensor Master(string name)
    {
        foreach (var g in Groups())
            for (var i = 0; i < g.Slots.Count; i++)
                if (g.Slots[i].Name == name) return g.View(Whole(g).Master, i);
        throw new ArgumentException($"no parameter named '{name}'", nameof(name));
    }

    /// <summary>
    /// The state to save: <c>{name}.exp_avg</c>, <c>{name}.exp_avg_sq</c> and, where the parameter is not its own
    /// float32 master, <c>{name}.master</c>; plus the step count, in the returned metadata. The tensors are views into
    /// the optimizer's buffers: write them out before the next step.
    /// </summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) State()
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var g in Groups())
        {
            var whole = Whole(g);
            for (var i = 0; i < g.Slots.Count; i++)
            {
                var name = g.Slots[i].Name;
                tensors[name + ".exp_avg"] = g.View(whole.ExpAvg, i);
                tensors[name + ".exp_avg_sq"] = g.View(whole.ExpAvgSq, i);
                if (g.Slots[i].Parameter.dtype != ScalarType.Float32) tensors[name + ".master"] = g.View(whole.Master, i);
            }
        }
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var meta = new Dictionary<string, string>
        {
            ["step"] = StepCount.ToString(inv),
            ["beta1"] = Beta1.ToString("R", inv),
            ["beta2"] = Beta2.ToString("R", inv),
            ["eps"] = Epsilon.ToString("R", inv),
        };
        return (tensors, meta);
    }

    /// <summary>Restores <see cref="State"/> from a saved file; every parameter must be present with its shape.</summary>
    public void Load(Io.SafetensorsFile file)
    {
        using var _ = no_grad();
        if (!file.Metadata.TryGetValue("step", out var step)) throw new OspreyException($"{file.Path} has no 'step' in its metadata; it is not an Osprey optimizer state.");
        foreach (var g in Groups())
        {
            if (g.Partition is { } partition)
            {
                LoadShard(file, g, partition);
                continue;
            }
            for (var i = 0; i < g.Slots.Count; i++)
            {
                var s = g.Slots[i];
                using (var v = g.View(g.ExpAvg, i)) Copy(file, s.Name + ".exp_avg", v);
                using (var v = g.View(g.ExpAvgSq, i)) Copy(file, s.Name + ".exp_avg_sq", v);
                using var master = g.View(g.Master, i);
                if (s.Parameter.dtype != ScalarType.Float32) Copy(file, s.Name + ".master", master);
                else master.copy_(s.Parameter);
                if (!g.Relocated[i]) s.Parameter.copy_(master);
            }
        }
        StepCount = long.Parse(step, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>ZeRO: reads the whole (consolidated) state and keeps this rank's shard; the weights take the saved master.</summary>
    void LoadShard(Io.SafetensorsFile file, Group g, Partition partition)
    {
        using var scope = NewDisposeScope();
        var device = g.Slots[0].Parameter.device;
        var master = zeros(partition.PaddedLength, dtype: ScalarType.Float32, device: device);
        var expAvg = zeros(partition.PaddedLength, dtype: ScalarType.Float32, device: device);
        var expAvgSq = zeros(partition.PaddedLength, dtype: ScalarType.Float32, device: device);
        for (var i = 0; i < g.Slots.Count; i++)
        {
            var s = g.Slots[i];
            Copy(file, s.Name + ".exp_avg", g.View(expAvg, i));
            Copy(file, s.Name + ".exp_avg_sq", g.View(expAvgSq, i));
            if (s.Parameter.dtype != ScalarType.Float32) Copy(file, s.Name + ".master", g.View(master, i));
            else if (g.Unit < 0) g.View(master, i).copy_(s.Parameter);
            if (g.Unit < 0) s.Parameter.copy_(g.View(master, i));
        }
        // ZeRO-3, float32 weights: released, so their values (loaded from the checkpoint before sharding) are the shards.
        if (g.Unit >= 0 && g.Slots[0].Parameter.dtype == ScalarType.Float32)
        {
            using var shard = g.Master.to(device, copy: true);
            _collectives!.AllGather(shard, master);
        }
        var start = partition.Start(_collectives!.Rank);
        g.Master.copy_(master.narrow(0, start, partition.ShardLength));
        g.ExpAvg.copy_(expAvg.narrow(0, start, partition.ShardLength));
        g.ExpAvgSq.copy_(expAvgSq.narrow(0, start, partition.ShardLength));
    }

    static void Copy(Io.SafetensorsFile file, string name, Tensor target)
    {
        if (!file.Contains(name)) throw new OspreyException($"{file.Path} lacks '{name}'; the checkpoint was saved for a different set of trainable parameters.");
        using var source = file.ReadTensor(name);
        if (!source.shape.SequenceEqual(target.shape)) throw new OspreyException($"{file.Path}: '{name}' has shape [{string.Join(", ", source.shape)}], expected [{string.Join(", ", target.shape)}].");
        target.copy_(source);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // A failed transfer was already reported where it was waited for (or a rank's death stops the job anyway).
        try { FinishInFlight(); }
        catch (Exception) { _inFlight.Clear(); }
        if (_groups is null) return;
        foreach (var g in _groups)
        {
            g.Grad?.Dispose();
            g.GradAccum?.Dispose();
            ReleaseFull(g);
            // Relocated parameters live in the master (or compute) buffer: it is freed with them, not here.
            if (!g.Relocated.Any(r => r)) g.Master.Dispose();
            g.ExpAvg.Dispose();
            g.ExpAvgSq.Dispose();
        }
        _groups = null;
    }
}
