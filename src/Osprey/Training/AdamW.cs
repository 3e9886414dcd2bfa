using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) exactly as torch.optim.AdamW computes it (single-tensor path): decoupled
/// decay p ← p·(1 − lr·wd), m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², p ← p − (lr / (1 − β1ᵗ)) · m /
/// (√v / √(1 − β2ᵗ) + ε). Every trainable tensor has a float32 master copy (the parameter itself when it is
/// float32; otherwise a copy that the low-precision parameter is refreshed from after each step), and the
/// moments are float32, so bf16/fp16 training loses nothing in the update.
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly List<Slot> _slots = [];

    /// <summary>One parameter's state.</summary>
    sealed record Slot(string Name, Tensor Parameter, Tensor Master, Tensor ExpAvg, Tensor ExpAvgSq, double LrScale, double WeightDecay);

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

    /// <summary>Adds a trainable parameter; its learning rate is the step's rate × <paramref name="lrScale"/>.</summary>
    public void Add(string name, Tensor parameter, double weightDecay, double lrScale = 1.0)
    {
        using var _ = no_grad();
        var master = parameter.dtype == ScalarType.Float32 ? parameter : parameter.detach().to_type(ScalarType.Float32);
        _slots.Add(new Slot(name, parameter, master, zeros_like(master), zeros_like(master), lrScale, weightDecay));
    }

    /// <summary>
    /// The L2 norm of all gradients together (float32), and, when it exceeds <paramref name="maxNorm"/> &gt; 0,
    /// every gradient scaled by maxNorm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm
    /// before clipping as a one-element tensor (no host sync).
    /// </summary>
    public Tensor ClipGradients(double maxNorm)
    {
        using var scope = NewDisposeScope();
        // As torch does: the norm of the per-tensor norms.
        var norms = new List<Tensor>();
        foreach (var s in _slots)
        {
            var g = s.Parameter.grad;
            if (g is null) continue;
            norms.Add(g.to_type(ScalarType.Float32).norm());
        }
        var total = norms.Count == 0 ? zeros(1, dtype: ScalarType.Float32) : stack(norms).norm();
        if (maxNorm > 0)
        {
            var coef = (maxNorm / (total + 1e-6)).clamp_max(1.0);
            foreach (var s in _slots)
                s.Parameter.grad?.mul_(coef.to_type(s.Parameter.grad.dtype));
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
        foreach (var s in _slots)
        {
            var grad = s.Parameter.grad;
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            var g = grad.dtype == ScalarType.Float32 ? grad : grad.to_type(ScalarType.Float32);
            var rate = lr * s.LrScale;
            if (s.WeightDecay != 0) s.Master.mul_(1 - rate * s.WeightDecay);
            s.ExpAvg.lerp_(g, 1 - Beta1);
            s.ExpAvgSq.mul_(Beta2).addcmul_(g, g, 1 - Beta2);
            var denom = (s.ExpAvgSq.sqrt() / bc2Sqrt).add_(Epsilon);
            s.Master.addcdiv_(s.ExpAvg, denom, -rate / bc1);
            if (!ReferenceEquals(s.Master, s.Parameter)) s.Parameter.copy_(s.Master);
        }
    }

    /// <summary>Clears every gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var s in _slots)
        {
            var g = s.Parameter.grad;
            if (g is null) continue;
            g.zero_();
        }
    }

    /// <summary>
    /// The state to save: <c>{name}.exp_avg</c>, <c>{name}.exp_avg_sq</c> and, where the master differs from the
    /// parameter, <c>{name}.master</c>; plus the step count, in the returned metadata.
    /// </summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) State()
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var s in _slots)
        {
            tensors[s.Name + ".exp_avg"] = s.ExpAvg;
            tensors[s.Name + ".exp_avg_sq"] = s.ExpAvgSq;
            if (!ReferenceEquals(s.Master, s.Parameter)) tensors[s.Name + ".master"] = s.Master;
        }
        var meta = new Dictionary<string, string>
        {
            ["step"] = StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["beta1"] = Beta1.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["beta2"] = Beta2.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["eps"] = Epsilon.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        };
        return (tensors, meta);
    }

    /// <summary>Restores <see cref="State"/> from a saved file; every parameter must be present with its shape.</summary>
    public void Load(Io.SafetensorsFile file)
    {
        using var _ = no_grad();
        if (!file.Metadata.TryGetValue("step", out var step)) throw new OspreyException($"{file.Path} has no 'step' in its metadata; it is not an Osprey optimizer state.");
        foreach (var s in _slots)
        {
            Copy(file, s.Name + ".exp_avg", s.ExpAvg);
            Copy(file, s.Name + ".exp_avg_sq", s.ExpAvgSq);
            if (!ReferenceEquals(s.Master, s.Parameter))
            {
                Copy(file, s.Name + ".master", s.Master);
                s.Parameter.copy_(s.Master);
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
        foreach (var s in _slots)
        {
            s.ExpAvg.Dispose();
            s.ExpAvgSq.Dispose();
            if (!ReferenceEquals(s.Master, s.Parameter)) s.Master.Dispose();
        }
        _slots.Clear();
    }
}
