using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    Generator? _dropoutGenerator;

    /// <summary>
    /// The generator dropout inside the model draws from (an adapter's dropout; re-seeded per layer while training): the
    /// model's own on the CPU, so parallel work in one process cannot disturb it; null on CUDA, where libtorch's
    /// per-device default generator is used (a CPU generator cannot draw CUDA tensors).
    /// </summary>
    internal Generator? DropoutGenerator => Device.type == DeviceType.CUDA ? null : _dropoutGenerator ??= new Generator(0, CPU);

    /// <summary>The model's linear layers by Hugging Face module path (model.layers.0.self_attn.q_proj, ..., lm_head).</summary>
    internal IEnumerable<(string Path, LinearLayer Layer)> LinearLayers()
    {
        foreach (var (name, module) in named_modules())
            if (module is LinearLayer linear) yield return (name, linear);
    }

    /// <summary>The state-dict keys of the adapters attached to the model's linear layers (<see cref="LinearLayer.Attach"/>).</summary>
    internal HashSet<string> AdapterKeys()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, layer) in LinearLayers())
            foreach (var key in layer.AdapterKeys()) keys.Add(path + "." + key);
        return keys;
    }

    /// <summary>The base model's parameters by Hugging Face name (no adapter tensors; a tied lm_head is not listed).</summary>
    public IReadOnlyList<(string Name, Parameter Tensor)> BaseParameters()
    {
        var adapters = AdapterKeys();
        return named_parameters().Where(p => !adapters.Contains(p.name)).Select(p => (p.name, p.parameter)).ToList();
    }

    /// <summary>
    /// One micro-batch of training (or evaluation): next-token cross-entropy summed over the positions whose
    /// shifted label is not -100, and, when <see cref="TrainForwardOptions.Backward"/>, the gradients of
    /// (sum × <see cref="TrainForwardOptions.LossScale"/>) accumulated into every parameter that requires them.
    /// </summary>
    /// <remarks>
    /// Logits exist only for labelled positions and only <see cref="TrainForwardOptions.LossChunkRows"/> rows at a
    /// time: each chunk's float32 logits are made, differentiated and freed before the next, and the gradient of
    /// the hidden states is then sent back through the model in one pass. With gradient checkpointing the layers
    /// first run without autograd, keeping only each layer's input; the backward pass then re-runs one layer at a
    /// time with autograd and back-propagates through it. Dropout draws are re-seeded per layer from
    /// <see cref="TrainForwardOptions.DropoutSeed"/>, so the recomputation sees the same masks and results are
    /// the same with and without checkpointing.
    /// </remarks>
    public TrainForwardResult ForwardBackward(Tensor inputIds, Tensor labels, Tensor? positionIds, TrainForwardOptions options)
    {
        long b = inputIds.shape[0], t = inputIds.shape[1];
        if (!labels.shape.SequenceEqual(inputIds.shape)) throw new ArgumentException("labels must have the shape of input ids");
        using var scope = NewDisposeScope();
        using var grad = options.Backward ? enable_grad() : no_grad();
        PhaseTimer.Mark(Device, "batch to device");
        // Images: their features replace the placeholder tokens and positions are M-RoPE's three rows, exactly as in
        // inference (PrefillWithImages). In packed rows each sample's M-RoPE positions start again from 0, as if it
        // were alone (PackedImagePositions); attention stays within the sample (segments).
        var images = options.Images is { Count: > 0 } given ? given : null;
        var segments = positionIds is null ? null : SegmentIds(positionIds);
        var ropePositions = images is null ? positionIds
            : positionIds is null ? ImagePositions(inputIds, images).Positions
            : Vision is null ? positionIds // LLaVA: the language model's ordinary positions, restarting per sample
            : PackedImagePositions(inputIds, positionIds, images);
        var context = model.Prepare(inputIds, ropePositions, null, null, segments);
        PhaseTimer.Mark(Device, "forward: positions and attention inputs");

        // Rows of the flattened hidden states that predict a label: position p predicts labels[p + 1].
        var shifted = labels.narrow(1, 1, t - 1);
        var picks = options.LabelledPositions ?? shifted.ne(-100).reshape(-1).nonzero().reshape(-1);
        var count = picks.shape[0];
        var rowsIndex = picks.div(t - 1, rounding_mode: RoundingMode.floor) * t + picks.remainder(t - 1);
        var targets = shifted.reshape(-1).index_select(0, picks);
        PhaseTimer.Mark(Device, "forward: labelled positions");

        // The vision tower trains (--freeze_vit/--freeze_aligner false): the gradient must reach the embeddings' input.
        var visionTrainable = images is not null && VisionParameters().Any(p => p.requires_grad);
        var embedTrainable = model.EmbedTokens.Weight.requires_grad || visionTrainable;
        var checkpoint = options.GradientCheckpointing && options.Backward;
        // A residency hook without recompute (data parallel's per-layer gradient all-reduce) needs the backward pass
        // layer by layer too: each layer's autograd graph ends at a leaf copy of its input, kept with its output.
        var segmented = !checkpoint && options.Backward && options.Residency is not null;
        var inputs = new List<Tensor>();
        var outputs = new List<Tensor>();
        Tensor? embedded = null;
        Tensor last;
        Tensor h;
        using (checkpoint ? no_grad() : enable_grad(options.Backward))
        {
            h = EmbedWithImages(inputIds, images);
            PhaseTimer.Mark(Device, "forward: embedding");
            for (int i = 0; i < model.LayerCount; i++)
            {
                if (i == 1) PhaseTimer.Mark(Device, "forward: first layer");
                if (checkpoint) inputs.Add(h);
                else if (segmented)
                {
                    if (i > 0 || embedTrainable)
                    {
                        if (i == 0) embedded = h;
                        h = h.detach().requires_grad_(true);
                    }
                    inputs.Add(h);
                }
                Reseed(options, i);
                // One scope per layer: handles to the layer's intermediates go as soon as it returns (autograd keeps
                // what backward needs), or every layer's activations would stay alive until the step ends.
                using var layerScope = NewDisposeScope();
                options.Residency?.BeforeLayer(i);
                var next = model.Layer(i, h, context).MoveToOuterDisposeScope();
                // With autograd on and no recompute, backward still needs the layer's weights: they stay.
                if (checkpoint || !options.Backward) options.Residency?.AfterLayerForward(i);
                if (segmented) outputs.Add(next);
                else if (!checkpoint && i > 0) h.Dispose();
                h = next;
            }
        }
        PhaseTimer.Mark(Device, checkpoint ? "layers forward (no autograd)" : "layers forward");
        if (checkpoint || segmented) h = h.detach().requires_grad_(true);
        last = h;
        var normed = model.Norm(last);
        var rows = normed.reshape(b * t, normed.shape[2]).index_select(0, rowsIndex);
        var leaf = options.Backward ? rows.detach().requires_grad_(true) : rows;
        var lossSum = zeros(1, dtype: ScalarType.Float32, device: Device);
        var correct = zeros(1, dtype: ScalarType.Int64, device: Device);
        var chunk = Math.Max(1, options.LossChunkRows);
        Tensor? rowLogProbs = null, rowCounts = null, tokenLogProbs = null, tokenEntropy = null;
        var tokenLevel = options.TokenObjective is not null || options.TokenLogProbs;
        if (options.SequenceObjective is not null || options.RowLogProbs || tokenLevel)
        {
            // Sequence-level objectives (preference losses) depend on each row's summed token log-probability, token-level
            // ones (GRPO) on each token's. Pass A (no autograd) gathers them chunk by chunk; the objective's gradient per
            // row (g_r) or per token (g_t) then turns pass B into a weighted token cross-entropy (∂loss/∂CE_t = −g), so the
            // float32 logits still exist one chunk at a time.
            var rowOf = picks.div(t - 1, rounding_mode: RoundingMode.floor);
            rowLogProbs = zeros(b, dtype: ScalarType.Float32, device: Device);
            rowCounts = zeros(b, dtype: ScalarType.Float32, device: Device).index_add_(0, rowOf, ones(count, dtype: ScalarType.Float32, device: Device), 1);
            if (tokenLevel)
            {
                tokenLogProbs = zeros(count, dtype: ScalarType.Float32, device: Device);
                tokenEntropy = zeros(count, dtype: ScalarType.Float32, device: Device);
            }
            using (no_grad())
            {
                for (long start = 0; start < count; start += chunk)
                {
                    using var chunkScope = NewDisposeScope();
                    var n = Math.Min(chunk, count - start);
                    var target = targets.narrow(0, start, n);
                    var stored = Head(leaf.narrow(0, start, n).detach());
                    if (!tokenLevel && FusedLoss(stored, backward: false))
                    {
                        var (ce, _, argmax) = FusedKernels.CrossEntropy(stored, target);
                        rowLogProbs.index_add_(0, rowOf.narrow(0, start, n), ce.neg_(), 1);
                        correct.add_(argmax.eq(target).sum());
                        continue;
                    }
                    var logits = stored.to_type(ScalarType.Float32);
                    var tokenLogp = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.None).neg();
                    rowLogProbs.index_add_(0, rowOf.narrow(0, start, n), tokenLogp, 1);
                    correct.add_(logits.argmax(-1).eq(target).sum());
                    if (tokenLevel)
                    {
                        tokenLogProbs!.narrow(0, start, n).copy_(tokenLogp);
                        var logp = nn.functional.log_softmax(logits, -1);
                        tokenEntropy!.narrow(0, start, n).copy_(logp.exp().mul(logp).sum(-1).neg());
                    }
                }
            }
            Tensor? weights = null;
            if (options.TokenObjective is { } tokenObjective)
            {
                var leafTokens = tokenLogProbs!.detach().requires_grad_(true);
                Tensor objectiveLoss;
                using (enable_grad()) objectiveLoss = tokenObjective(leafTokens);
                lossSum.add_(objectiveLoss.detach().reshape(1));
                if (options.Backward)
                {
                    objectiveLoss.backward();
                    weights = (leafTokens.grad ?? zeros_like(leafTokens)).neg().mul(options.LossScale);
                }
            }
            else if (options.SequenceObjective is { } objective)
            {
                var rows_ = rowLogProbs.detach().requires_grad_(true);
                Tensor objectiveLoss;
                using (enable_grad()) objectiveLoss = objective(rows_, rowCounts);
                lossSum.add_(objectiveLoss.detach().reshape(1));
                if (options.Backward)
                {
                    objectiveLoss.backward();
                    weights = (rows_.grad ?? zeros_like(rows_)).neg().mul(options.LossScale).index_select(0, rowOf);
                }
            }
            if (weights is not null)
            {
                for (long start = 0; start < count; start += chunk)
                {
                    using var chunkScope = NewDisposeScope();
                    var n = Math.Min(chunk, count - start);
                    var stored = Head(leaf.narrow(0, start, n));
                    var target = targets.narrow(0, start, n);
                    if (FusedLoss(stored, backward: true))
                    {
                        var (_, lse, _) = FusedKernels.CrossEntropy(stored.detach(), target);
                        torch.autograd.backward([stored], [FusedKernels.CrossEntropyBackward(stored.detach(), target, lse, weights.narrow(0, start, n))]);
                        continue;
                    }
                    var logits = stored.to_type(ScalarType.Float32);
                    var ce = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.None);
                    (ce * weights.narrow(0, start, n)).sum().backward();
                }
            }
        }
        for (long start = 0; start < (rowLogProbs is null ? count : 0); start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            var n = Math.Min(chunk, count - start);
            var x = leaf.narrow(0, start, n);
            var target = targets.narrow(0, start, n);
            var stored = Head(x);
            if (FusedLoss(stored, options.Backward))
            {
                // The loss and its gradient (softmax − onehot) straight from the stored logits: no float32 copy, no
                // log-softmax tensor, two passes over the chunk instead of about eight.
                var (rowLoss, lse, argmax) = FusedKernels.CrossEntropy(stored.detach(), target);
                lossSum.add_(rowLoss.sum());
                correct.add_(argmax.eq(target).sum());
                if (options.Backward)
                {
                    using var factor = options.LossScale.ToScalar();
                    using var scale = full([n], factor, dtype: ScalarType.Float32, device: Device);
                    torch.autograd.backward([stored], [FusedKernels.CrossEntropyBackward(stored.detach(), target, lse, scale)]);
                }
                continue;
            }
            var logits = stored.to_type(ScalarType.Float32);
            var ce = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.Sum);
            using (no_grad())
            {
                lossSum.add_(ce.detach());
                correct.add_(logits.argmax(-1).eq(target).sum());
            }
            if (options.Backward) (ce * options.LossScale).backward();
        }
        PhaseTimer.Mark(Device, "norm + logits + loss (forward and backward)");
        if (options.Backward && count > 0 && rows.requires_grad)
        {
            torch.autograd.backward(rows, leaf.grad!);
            if (checkpoint || segmented)
            {
                var g = last.grad!;
                for (int i = model.LayerCount - 1; i >= 0; i--)
                {
                    using var layerScope = NewDisposeScope();
                    var needInput = i > 0 || embedTrainable;
                    Tensor x, output;
                    if (checkpoint)
                    {
                        x = inputs[i].detach().requires_grad_(needInput);
                        Reseed(options, i);
                        options.Residency?.BeforeLayer(i);
                        output = model.Layer(i, x, context);
                    }
                    else
                    {
                        (x, output) = (inputs[i], outputs[i]);
                    }
                    if (output.requires_grad) torch.autograd.backward(output, g);
                    options.Residency?.AfterLayerBackward(i);
                    DequantizedLinear.ReleaseHandedBack(); // the layer's gradients were made on libtorch's CUDA thread
                    if (!needInput) break;
                    var next = x.grad ?? zeros_like(x);
                    g = next.detach().MoveToOuterDisposeScope();
                    if (segmented)
                    {
                        x.grad = null; // the input's gradient lives on as g only
                        output.Dispose();
                    }
                }
                if (embedTrainable)
                {
                    var e = checkpoint ? EmbedWithImages(inputIds, images) : embedded!;
                    torch.autograd.backward(e, g);
                }
            }
            DequantizedLinear.ReleaseHandedBack();
            PhaseTimer.Mark(Device, checkpoint ? "layers recompute + backward" : "layers backward");
        }
        return new TrainForwardResult(lossSum.MoveToOuterDisposeScope(), correct.MoveToOuterDisposeScope(), count)
        {
            RowLogProbs = rowLogProbs?.detach().MoveToOuterDisposeScope(),
            RowCounts = rowCounts?.MoveToOuterDisposeScope(),
            TokenLogProbs = tokenLogProbs?.detach().MoveToOuterDisposeScope(),
            TokenEntropy = tokenEntropy?.MoveToOuterDisposeScope(),
        };
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _dropoutGenerator?.Dispose();
            DisposeStates();
            DisposeInt8Head();
            DisposeCpuDecoder();
        }
        base.Dispose(disposing);
    }

    /// <summary>
    /// Whether a loss chunk's <paramref name="logits"/> go through the fused cross-entropy kernels (CUDA; with a backward
    /// pass only where training uses the fused kernels, <see cref="FusedKernels.Autograd"/>).
    /// </summary>
    static bool FusedLoss(Tensor logits, bool backward) => FusedKernels.CrossEntropyFits(logits) && (!backward || FusedKernels.Autograd);

    /// <summary>The logits of final hidden states <paramref name="h"/> (after the last norm): the head or the tied embeddings, then Gemma 2's softcap.</summary>
    Tensor Head(Tensor h)
    {
        if (IsRewardModel) throw RewardForwardError();
        var logits = Int8HeadLogits(h) ?? (lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, model.EmbedTokens.Weight));
        if (Spec.FinalLogitSoftcap is double cap) logits = (logits / cap).tanh() * cap;
        return logits;
    }

    /// <summary>Seeds the model's dropout (adapters') for a forward pass outside <see cref="ForwardBackward"/> (e.g. <see cref="Scores"/>), so it is reproducible.</summary>
    public void SeedDropout(long seed) => Reseed(new TrainForwardOptions { DropoutSeed = seed }, 0);

    void Reseed(TrainForwardOptions options, int layer)
    {
        if (options.DropoutSeed is not long seed) return;
        var s = unchecked(seed * 1_000_003 + layer);
        if (DropoutGenerator is { } g) g.manual_seed(s);
        else torch.cuda.manual_seed(s);
    }
}
