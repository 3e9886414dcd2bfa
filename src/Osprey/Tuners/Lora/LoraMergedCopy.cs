using Osprey.Models;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// A copy of a LoRA model's adapted weights with the adapters folded in (W + s·B·A), for inference passes that read
/// the live policy many times between two updates (GRPO/PPO rollouts). With unmerged adapters every adapted projection
/// costs three matrix multiplies, and q/k/v and gate/up can no longer run as one stacked multiply: on a 0.5B model
/// the serving engine decoded rollouts at 0.37 of its plain throughput (benchmarks/session5-h100.md). With the copy
/// in use (<see cref="Use"/>) the forward pass is the plain model's again. <see cref="Refresh"/> recomputes the copy
/// from the current adapters in place (the buffers never move, so CUDA graphs captured over them stay valid). The
/// cost is the adapted weights' memory once, what a separate inference engine holding the merged policy also pays.
/// </summary>
internal sealed class LoraMergedCopy : IDisposable
{
    readonly List<(FusedProjection Group, Tensor Merged)> _groups = [];
    readonly List<(LinearLayer Layer, Tensor Merged)> _layers = [];

    LoraMergedCopy() { }

    /// <summary>Bytes the merged copies hold.</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// The copy for <paramref name="model"/>'s LoRA adapters, or null with the reason: no adapters, DoRA (its
    /// magnitude normalises the merged weight, not the output: kept unmerged), a quantized base (merging it would
    /// undo QLoRA's memory saving), or not enough memory for the copies.
    /// </summary>
    public static LoraMergedCopy? TryCreate(CausalLM model, out string? reason)
    {
        reason = null;
        var adapted = model.LinearLayers().Select(l => l.Layer).Where(l => l.Adapter is not null).ToList();
        if (adapted.Count == 0) { reason = "the model has no LoRA adapters"; return null; }
        if (adapted.Any(l => l.Adapter is not LoraWeights { Magnitude: null })) { reason = "DoRA adapters are applied unmerged"; return null; }
        if (adapted.Any(l => l.Base is not null)) { reason = "a quantized base (QLoRA) keeps its adapters unmerged, as a merged copy would be full precision"; return null; }
        var copy = new LoraMergedCopy();
        try
        {
            var inGroups = new HashSet<LinearLayer>(ReferenceEqualityComparer.Instance);
            foreach (var group in FusedGroups(model))
            {
                if (!group.Parts.Any(p => p.Adapter is not null) || group.Parts.Any(p => p.Base is not null)) continue;
                copy.Add(group, empty_like(group.Weight).DetachFromDisposeScope());
                foreach (var part in group.Parts) inGroups.Add(part);
            }
            foreach (var layer in adapted.Where(l => !inGroups.Contains(l)))
                copy.Add(layer, empty_like(layer.Weight).DetachFromDisposeScope());
        }
        catch (Exception e) when (e is not OspreyException)
        {
            // libtorch's out-of-memory (or any allocation failure): the rollouts use the unmerged adapters instead.
            var bytes = copy.Bytes;
            copy.Dispose();
            reason = $"no memory for a merged copy of the adapted weights ({bytes / 1073741824.0:F1} GiB allocated when it failed: {e.Message.Split('\n')[0]})";
            return null;
        }
        copy.Refresh();
        return copy;
    }

    /// <summary>The model's stacked projections (q/k/v, gate/up): each one's parts read the same input.</summary>
    internal static IEnumerable<FusedProjection> FusedGroups(CausalLM model)
    {
        foreach (var (_, module) in model.named_modules())
            if (module is Attention { Fused: { } a }) yield return a;
            else if (module is Mlp { Fused: { } m }) yield return m;
    }

    void Add(FusedProjection group, Tensor merged)
    {
        _groups.Add((group, merged));
        Bytes += merged.numel() * merged.element_size();
    }

    void Add(LinearLayer layer, Tensor merged)
    {
        _layers.Add((layer, merged));
        Bytes += merged.numel() * merged.element_size();
    }

    /// <summary>Recomputes every copy from the base weights and the adapters as they are now (in float32, rounded once to the weights' type).</summary>
    public void Refresh()
    {
        using var _ = no_grad();
        foreach (var (group, merged) in _groups)
        {
            long start = 0;
            foreach (var part in group.Parts)
            {
                var rows = part.Weight.shape[0];
                using var slice = merged.narrow(0, start, rows);
                Fill(slice, part);
                start += rows;
            }
        }
        foreach (var (layer, merged) in _layers) Fill(merged, layer);
    }

    static void Fill(Tensor target, LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        if (layer.Adapter is LoraWeights { Disabled: false } lora)
            target.copy_(LoraWeights.Merged(layer.Weight, lora.A.Weight, lora.B.Weight, null, lora.Settings.Scaling));
        else
            target.copy_(layer.Weight);
    }

    /// <summary>Makes forward passes read the copies until the returned scope is disposed.</summary>
    public IDisposable Use()
    {
        foreach (var (group, merged) in _groups) group.UseMerged(merged);
        foreach (var (layer, merged) in _layers) layer.UseMerged(merged);
        return new Scope(this);
    }

    void Unuse()
    {
        foreach (var (group, _) in _groups) group.UseMerged(null);
        foreach (var (layer, _) in _layers) layer.UseMerged(null);
    }

    sealed class Scope(LoraMergedCopy copy) : IDisposable
    {
        bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            copy.Unuse();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Unuse();
        foreach (var (_, merged) in _groups) merged.Dispose();
        foreach (var (_, merged) in _layers) merged.Dispose();
        _groups.Clear();
        _layers.Clear();
    }
}
