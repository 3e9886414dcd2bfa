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
public sealed class AdamW : IDisposable
{
    readonly List<Slot> _slots = [];
    List<Group>? _groups;

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
        public Tensor? Compute { get; set; }
        public Tensor? Grad { get; set; }

        public Tensor View(Tensor flat, int i) => flat.narrow(0, Offsets[i], Slots[i].Parameter.numel()).view(Slots[i].Parameter.shape);
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

    List<Group> Groups()
    {
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
        foreach (var g in Groups())
        {
            g.Grad?.Dispose();
            g.Grad = Gather(g)?.DetachFromDisposeScope();
            if (g.Grad is not null) norms.Add(g.Grad.norm());
            else
                foreach (var s in g.Slots)
                    if (s.Parameter.grad is { } grad) norms.Add(grad.to_type(ScalarType.Float32).norm());
        }
        var total = norms.Count == 0 ? zeros(1, dtype: ScalarType.Float32) : stack(norms).norm();
        if (maxNorm > 0)
        {
            var coef = (maxNorm / (total + 1e-6)).clamp_max(1.0);
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
        using var _ = no_grad();
        var bc1 = 1 - Math.Pow(Beta1, StepCount);
        var bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        foreach (var g in Groups())
        {
            using var scope = NewDisposeScope();
            var rate = lr * g.LrScale;
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

    void Update(Tensor master, Tensor expAvg, Tensor expAvgSq, Tensor grad, double rate, double decay, double bc1, double bc2Sqrt)
    {
        if (decay != 0) master.mul_(1 - rate * decay);
        expAvg.lerp_(grad, 1 - Beta1);
        expAvgSq.mul_(Beta2).addcmul_(grad, grad, 1 - Beta2);
        using var denom = (expAvgSq.sqrt() / bc2Sqrt).add_(Epsilon);
        master.addcdiv_(expAvg, denom, -rate / bc1);
    }

    /// <summary>Drops every gradient (the next backward pass writes fresh ones instead of adding).</summary>
    public void ZeroGrad()
    {
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
        }
    }

    /// <summary>The float32 master of parameter <paramref name="name"/> (a view into the optimizer's buffer; valid until the next step).</summary>
    public Tensor Master(string name)
    {
        foreach (var g in Groups())
            for (var i = 0; i < g.Slots.Count; i++)
                if (g.Slots[i].Name == name) return g.View(g.Master, i);
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
            for (var i = 0; i < g.Slots.Count; i++)
            {
                var name = g.Slots[i].Name;
                tensors[name + ".exp_avg"] = g.View(g.ExpAvg, i);
                tensors[name + ".exp_avg_sq"] = g.View(g.ExpAvgSq, i);
                if (g.Slots[i].Parameter.dtype != ScalarType.Float32) tensors[name + ".master"] = g.View(g.Master, i);
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
        if (_groups is null) return;
        foreach (var g in _groups)
        {
            g.Grad?.Dispose();
            // Relocated parameters live in the master (or compute) buffer: it is freed with them, not here.
            if (!g.Relocated.Any(r => r)) g.Master.Dispose();
            g.ExpAvg.Dispose();
            g.ExpAvgSq.Dispose();
        }
        _groups = null;
    }
}
