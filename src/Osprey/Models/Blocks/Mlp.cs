using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>Gated MLP: down(act(gate(x)) * up(x)), with separate or fused (gate_up_proj) projections.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE0044
    LinearLayer? gate_proj, up_proj, gate_up_proj;
    LinearLayer down_proj;
#pragma warning restore IDE0044
    readonly string _act;
    readonly FusedProjection? _fused; // gate/up stacked; not a registered component (its parts are)

    /// <summary>The stacked gate/up projection, where this block has one.</summary>
    internal FusedProjection? Fused => _fused;

    /// <summary>The projections (gate/up separate, or the stacked gate_up_proj, gate rows first) and the activation, for the managed CPU decoder.</summary>
    internal (LinearLayer? Gate, LinearLayer? Up, LinearLayer? GateUp, LinearLayer Down, string Activation) Parts =>
        (gate_proj, up_proj, gate_up_proj, down_proj, _act);

    /// <summary>Creates uninitialised projections as <paramref name="spec"/> says.</summary>
    public Mlp(DecoderSpec spec, ScalarType dtype, Device device, bool deferProjections = false) : base("MLP")
    {
        long h = spec.HiddenSize, i = spec.IntermediateSize;
        if (spec.FusedGateUp)
        {
            gate_up_proj = new LinearLayer(h, 2 * i, spec.MlpBias, dtype, device, deferProjections);
        }
        else
        {
            _fused = new FusedProjection(h, [i, i], spec.MlpBias, dtype, device, deferProjections);
            (gate_proj, up_proj) = (_fused.Parts[0], _fused.Parts[1]);
        }
        down_proj = new LinearLayer(i, h, spec.MlpBias, dtype, device, deferProjections);
        _act = spec.Activation;
        if (_act is not ("silu" or "swish" or "gelu" or "gelu_pytorch_tanh" or "gelu_new" or "relu"))
            throw new OspreyException($"activation '{_act}' in config.json is not supported; supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu.");
        RegisterComponents();
    }

    /// <summary>
    /// Rows (tokens) per MLP pass. Larger inputs (long or batched prefill) run in chunks of this many rows,
    /// so the [tokens, 2 × intermediate] activations never exist for the whole batch at once: at 32 × 2048
    /// tokens of a 7B model they would be 5 GB. Settable for tests.
    /// </summary>
    internal static long ChunkTokens { get; set; } = 8192;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        var rows = x.numel() / x.shape[^1];
        if (rows <= ChunkTokens) return Core(x);
        if (DeltaActive && x.dim() == 3) return ChunkedBySequence(x);
        using var flat = x.reshape(rows, x.shape[^1]);
        var parts = new List<Tensor>();
        try
        {
            for (long start = 0; start < rows; start += ChunkTokens)
            {
                using var chunk = flat.narrow(0, start, Math.Min(ChunkTokens, rows - start));
                parts.Add(Core(chunk));
            }
            using var joined = cat(parts, 0);
            return joined.view([.. x.shape.SkipLast(1), joined.shape[^1]]);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    bool DeltaActive =>
        down_proj.DeltaActive || gate_proj is { DeltaActive: true } || up_proj is { DeltaActive: true } || gate_up_proj is { DeltaActive: true };

    /// <summary>
    /// Chunks along the sequence axis, keeping [B, t, hidden] so the per-row serving-adapter masks still line up with
    /// the batch rows: about <see cref="ChunkTokens"/> tokens per chunk (at least one position of every row).
    /// </summary>
    Tensor ChunkedBySequence(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1];
        var step = Math.Max(1, ChunkTokens / b);
        var parts = new List<Tensor>();
        try
        {
            for (long start = 0; start < t; start += step)
            {
                using var chunk = x.narrow(1, start, Math.Min(step, t - start));
                parts.Add(Core(chunk));
            }
            return cat(parts, 1);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// From this many rows on, gate and up are two matrix multiplies over row slices of the stacked weight
    /// instead of one: each output is then contiguous, so SiLU and the product run as vectorised kernels
    /// (on the halves of one fused output they are strided and about twice as slow at prefill sizes).
    /// Settable for tests.
    /// </summary>
    internal static long SplitRows { get; set; } = 256;

    Tensor Core(Tensor x)
    {
        // Temporaries are disposed as soon as they are used: at 65k prefill tokens each is 0.6-1.3 GB.
        var rows = x.numel() / x.shape[^1];
        var stacked = gate_up_proj is { Adapter: null, DeltaActive: false, Base: null } ? gate_up_proj.Weight : _fused is { Usable: true, Adapted: false } ? _fused.Current : null;
        Tensor hidden;
        // The split path multiplies in place, which autograd cannot differentiate: only when nothing needs gradients.
        if (stacked is not null && !stacked.requires_grad && !x.requires_grad && rows >= SplitRows)
        {
            var bias = gate_up_proj?.Bias ?? _fused?.Bias;
            var half = stacked.shape[0] / 2;
            using var wg = stacked.narrow(0, 0, half);
            using var wu = stacked.narrow(0, half, half);
            using var bg = bias?.narrow(0, 0, half);
            using var bu = bias?.narrow(0, half, half);
            using var gate = nn.functional.linear(x, wg, bg);
            gate_proj?.AddDelta(x, gate);
            using var up = nn.functional.linear(x, wu, bu);
            up_proj?.AddDelta(x, up);
            hidden = Gated(gate, up, null, inPlace: true); // in place: inference only (no weight requires grad here)
        }
        else if (gate_up_proj is not null || _fused is { Usable: true })
        {
            var fusedOut = gate_up_proj?.forward(x) ?? _fused!.Forward(x);
            var half = fusedOut.shape[^1] / 2;
            using (fusedOut)
            using (var gate = fusedOut.narrow(-1, 0, half))
            using (var up = fusedOut.narrow(-1, half, half))
                hidden = Gated(gate, up, fusedOut, inPlace: false);
        }
        else
        {
            using var gate = gate_proj!.forward(x);
            using var up = up_proj!.forward(x);
            hidden = Gated(gate, up, null, inPlace: false);
        }
        using (hidden)
            return down_proj.forward(hidden);
    }

    /// <summary>
    /// act(gate) * up. SiLU on CUDA is one fused kernel (<see cref="FusedKernels.SwiGlu"/>; with autograd when training, handed
    /// the stacked projection output when there is one so its gradient comes back stacked). Elsewhere two tensor ops, the
    /// product in place when <paramref name="inPlace"/> (nothing needs gradients).
    /// </summary>
    Tensor Gated(Tensor gate, Tensor up, Tensor? stacked, bool inPlace)
    {
        if (_act is "silu" or "swish" && gate.dtype == up.dtype && FusedKernels.Usable(gate)
            && FusedKernels.RowsEvenlyStrided(gate) && FusedKernels.RowsEvenlyStrided(up))
        {
            if (!(is_grad_enabled() && (gate.requires_grad || up.requires_grad)))
                return inPlace && gate.is_contiguous() ? FusedKernels.SwiGlu(gate, up, into: gate).alias() : FusedKernels.SwiGlu(gate, up);
            if (FusedKernels.Autograd)
                return stacked is not null && stacked.is_contiguous() ? FusedSwiGluFunction.apply(stacked, null!) : FusedSwiGluFunction.apply(gate, up);
        }
        var act = Activate(gate);
        if (inPlace) return act.mul_(up);
        using (act) return act * up;
    }

    Tensor Activate(Tensor x) => _act switch
    {
        "silu" or "swish" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "relu" => nn.functional.relu(x),
        _ => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
    };
}
