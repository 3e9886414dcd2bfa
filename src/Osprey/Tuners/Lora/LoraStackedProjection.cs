using Osprey.Models.Blocks;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// LoRA on the parts of one stacked projection (q/k/v, gate/up) applied to the projection's one base output:
/// y = x W_sᵀ + b_s + s · (x A_sᵀ) B_dᵀ, with A_s the parts' A's stacked by rows [Σr, in] and B_d the block diagonal of
/// their B's [Σout, Σr] (a part without an adapter is a block of zero width). Each part's slice of y is then exactly
/// its own base + s·(x Aᵢᵀ)Bᵢᵀ: the off-diagonal blocks are zeros, which add nothing. The base stays one matrix
/// multiply over the stacked weight, the up-projections and their sum into the base are one <c>addmm</c>, and in
/// backward the input's gradient through the base is one product instead of one per part plus their sum.
/// </summary>
/// <remarks>
/// The stacked A and the block diagonal are built each call from the adapters' own parameters (<c>cat</c>,
/// <c>block_diag</c>), so autograd hands every <c>lora_A.weight</c> and <c>lora_B.weight</c> its gradient as before:
/// optimizers, saving and merging see the same parameters. With dropout in training each adapter's down-projection
/// reads its own dropped input (PEFT draws a mask per module, in the parts' order, as the part-by-part path does) and
/// the products are concatenated. DoRA reads each part's weight, so a group with DoRA runs part by part; so does a
/// group whose adapters are only partly switched off. <c>OSPREY_STACKED_LORA=0</c> turns this off (the parts then run
/// one by one, each with its own base product), for comparison.
/// </remarks>
internal sealed class LoraStackedProjection : IStackedAdapter
{
    /// <summary>Whether new stacked projections apply: on unless <c>OSPREY_STACKED_LORA=0</c>.</summary>
    internal static bool DefaultEnabled { get; set; } = Environment.GetEnvironmentVariable("OSPREY_STACKED_LORA") != "0";

    readonly LoraWeights?[] _adapters; // per part, in stacking order; null where the part has no adapter
    readonly long[] _outs;             // each part's output width

    /// <summary>Applies LoRA to a stacked projection whose parts have the widths and adapters of <paramref name="parts"/>.</summary>
    public LoraStackedProjection(IReadOnlyList<(long Out, LoraWeights? Adapter)> parts)
    {
        if (!parts.Any(p => p.Adapter is not null)) throw new ArgumentException("a stacked projection needs at least one adapter", nameof(parts));
        _adapters = [.. parts.Select(p => p.Adapter)];
        _outs = [.. parts.Select(p => p.Out)];
    }

    /// <summary>Whether the projection applies its adapters at once (off: part by part).</summary>
    public bool Enabled { get; set; } = DefaultEnabled;

    /// <summary>Forward passes that applied the adapters to the stacked output.</summary>
    public long Calls { get; private set; }

    /// <inheritdoc />
    public bool Applies(bool training)
    {
        if (!Enabled) return false;
        var present = _adapters.OfType<LoraWeights>().ToList();
        if (present.Any(a => a.Magnitude is not null)) return false;
        var off = present.Count(a => a.Disabled);
        return off == 0 || off == present.Count;
    }

    /// <inheritdoc />
    public Tensor Forward(Tensor x, Tensor baseOutput, bool training)
    {
        var live = _adapters.OfType<LoraWeights>().Where(a => !a.Disabled).ToList();
        if (live.Count == 0) return baseOutput;
        Calls++;
        var dt = x.dtype;
        var input = x.reshape(-1, x.shape[^1]);
        // x A_sᵀ, [rows, Σr]: one product, or with dropout one per adapter from its own dropped input.
        Tensor down;
        if (training && live.Any(a => a.Settings.Dropout > 0))
        {
            var pieces = live.Select(a =>
            {
                using var w = Cast(a.A.Weight, dt);
                if (!(a.Settings.Dropout > 0)) return nn.functional.linear(input, w);
                using var dropped = a.DropInput(input);
                return nn.functional.linear(dropped, w);
            }).ToList();
            down = pieces.Count == 1 ? pieces[0] : cat(pieces, 1);
            if (pieces.Count > 1) foreach (var p in pieces) p.Dispose();
        }
        else
        {
            var weights = live.Select(a => Cast(a.A.Weight, dt)).ToList();
            using var stacked = weights.Count == 1 ? weights[0].alias() : cat(weights, 0);
            foreach (var w in weights) w.Dispose();
            down = nn.functional.linear(input, stacked);
        }
        // B_d, [Σout, Σr]: the parts' B's on the diagonal; one scaling as addmm's alpha, or each B scaled if they differ.
        var scaling = live[0].Settings.Scaling;
        var oneScaling = live.All(a => a.Settings.Scaling == scaling);
        var blocks = new List<Tensor>(_adapters.Length);
        for (var i = 0; i < _adapters.Length; i++)
        {
            if (_adapters[i] is not { Disabled: false } a) blocks.Add(zeros(_outs[i], 0, dtype: dt, device: x.device));
            else if (oneScaling) blocks.Add(Cast(a.B.Weight, dt));
            else
                using (var b = Cast(a.B.Weight, dt)) blocks.Add(b * (float)a.Settings.Scaling); // the scaling rounded as addmm's alpha rounds it
        }
        using var diagonal = block_diag([.. blocks]);
        foreach (var b in blocks) b.Dispose();
        using (down)
        using (var flat = baseOutput.reshape(-1, baseOutput.shape[^1]))
        using (var up = diagonal.t())
        using (var sum = addmm(flat, down, up, 1f, oneScaling ? (float)scaling : 1f))
            return sum.view(baseOutput.shape);
    }

    static Tensor Cast(Tensor t, ScalarType dt) => t.dtype == dt ? t.alias() : t.to_type(dt);
}
