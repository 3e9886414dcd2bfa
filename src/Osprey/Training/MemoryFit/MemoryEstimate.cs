using Osprey.Models;

namespace Osprey.Training.MemoryFit;

/// <summary>
/// Predicted peak GPU memory of a training run, by component, in bytes: the formulas of docs/memory.md applied to a
/// model's config (no weights are read) and a <see cref="MemoryPlan"/>. Peak = context + weights + adapters +
/// gradients + optimizer state + max(kept activations + loss chunk + layer recompute, optimizer-step workspace). The loss
/// chunk and the layer recompute come one after the other, yet both count: libtorch's caching allocator keeps the loss
/// chunk's blocks reserved and the recompute's differently sized tensors mostly do not fit in them (measured on an H100,
/// benchmarks/session-bench-h100.md: with their max instead, a 7B QLoRA run came out 19% under its peak; with the sum,
/// bf16 LoRA and QLoRA land 3% and 9% under).
/// </summary>
public sealed record MemoryEstimate
{
    /// <summary>The CUDA context, cuBLAS/cuDNN workspaces and libtorch's kernels (measured ≈0.5 GiB).</summary>
    public const long CudaContextBytes = 512L << 20;

    /// <summary>CUDA context and workspaces.</summary>
    public long CudaContext { get; init; }

    /// <summary>The base model's weights as stored (packed 4/8-bit linears, dense embeddings, head and norms).</summary>
    public long Weights { get; init; }

    /// <summary>LoRA A and B matrices in the model's dtype (0 for full training).</summary>
    public long Adapters { get; init; }

    /// <summary>Gradients of the trainable tensors, in their dtype.</summary>
    public long Gradients { get; init; }

    /// <summary>AdamW: float32 master copy (unless the parameter is float32 already) and the two float32 moments.</summary>
    public long OptimizerState { get; init; }

    /// <summary>Activations autograd keeps across the whole forward pass (every layer's, or only each layer's input with checkpointing).</summary>
    public long KeptActivations { get; init; }

    /// <summary>One layer re-run with autograd plus its backward buffers (and, on a quantized base, one dequantized weight and the outputs TorchSharp mirrors).</summary>
    public long LayerRecompute { get; init; }

    /// <summary>One loss chunk: its logits in the model dtype and float32, log-softmax and gradients, plus the final norm.</summary>
    public long LossChunk { get; init; }

    /// <summary>The optimizer step: every gradient gathered into one flat float32 tensor (and its low-precision concatenation).</summary>
    public long StepWorkspace { get; init; }

    /// <summary>Trainable parameters.</summary>
    public long TrainableParameters { get; init; }

    /// <summary>Predicted peak bytes.</summary>
    public long Peak => CudaContext + Weights + Adapters + Gradients + OptimizerState
        + Math.Max(KeptActivations + LossChunk + LayerRecompute, StepWorkspace);

    /// <summary>The estimate for <paramref name="spec"/> trained as <paramref name="plan"/> says.</summary>
    public static MemoryEstimate Compute(DecoderSpec spec, MemoryPlan plan)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(plan);
        long h = spec.HiddenSize, inter = spec.IntermediateSize, v = spec.VocabSize, layers = spec.Layers.Count, d = plan.DTypeBytes;
        long q = (long)spec.NumHeads * spec.HeadDim, kv = (long)spec.NumKvHeads * spec.HeadDim;
        long tokens = (long)plan.BatchSize * plan.MaxLength;

        // The seven linear layers of a decoder layer: (name, in, out).
        (string Name, long In, long Out)[] linears =
        [
            ("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h),
            ("gate_proj", h, inter), ("up_proj", h, inter), ("down_proj", inter, h),
        ];
        long linearParams = linears.Sum(l => l.In * l.Out);
        long linearRows = linears.Sum(l => l.Out);
        long biasParams = (spec.QkvBias ? q + 2 * kv : 0) + (spec.OutputBias ? h : 0) + (spec.MlpBias ? 2 * inter + h : 0);
        long normParams = 2 * h + (spec.SandwichNorms ? 2 * h : 0) + (spec.QkNorm ? 2L * spec.HeadDim : 0);
        long embed = v * h, head = spec.TieWordEmbeddings ? 0 : v * h;
        long denseParams = embed + head + h + layers * (biasParams + normParams);
        long allParams = denseParams + layers * linearParams;

        long linearBytes = plan.QuantBits switch
        {
            // bitsandbytes 4-bit: two codes per byte, one absmax per 64 values (float32, or a uint8 code plus one
            // float32 per 256 blocks with double quantization).
            4 => Ceil(linearParams, 2) + (plan.DoubleQuant ? Ceil(linearParams, 64) + 4 * Ceil(linearParams, 64 * 256) : 4 * Ceil(linearParams, 64)),
            // LLM.int8: one byte per value, one float32 absmax per output row.
            8 => linearParams + 4 * linearRows,
            _ => linearParams * d,
        };
        long weights = denseParams * d + layers * linearBytes;

        var lora = plan.TrainType == TrainType.Lora;
        var targets = lora ? linears.Where(l => Targeted(plan.TargetModules, l.Name)).ToArray() : [];
        long adapterParams = layers * targets.Sum(l => (long)plan.LoraRank * (l.In + l.Out));
        long trainable = lora ? adapterParams : allParams;
        long optimizer = trainable * (d == 4 ? 8 : 12);
        // ZeRO-2/3: each rank keeps 1/world of the master and moments (none on the GPU when offloaded). Under ZeRO-2 the
        // full gradient still exists once per rank (it is reduce-scattered after backward), so Gradients is not divided.
        if (plan.ZeroStage != ZeroStage.None) optimizer = plan.OffloadOptimizer ? 0 : (optimizer + plan.WorldSize - 1) / Math.Max(1, plan.WorldSize);
        long gradients = trainable * d;
        if (plan.ZeroStage == ZeroStage.Zero3 && plan.WorldSize > 1)
        {
            // ZeRO-3: a layer's trainable weights and gradients exist whole only while it runs (itself and the prefetched
            // next, so two layers); the rest is this rank's float32 share of the summed gradients.
            long perLayer = lora ? adapterParams / Math.Max(1, layers) : linearParams + biasParams + normParams;
            long layerPart = lora ? adapterParams : layers * (linearParams + biasParams + normParams);
            long resident = Math.Min(layers, 2) * perLayer;
            if (!lora) weights -= (layerPart - resident) * d;
            gradients = (trainable - layerPart + resident) * d + 4 * Ceil(layerPart, plan.WorldSize);
        }
        long step = trainable * (d == 4 ? 4 : 4 + d);

        // Per token and layer, what autograd keeps (docs/memory.md): RMSNorm's float32 input copy and 1/rms (×2 norms),
        // the normed inputs of the projections, q and the head-expanded k and v given to SDPA, its output and
        // log-sum-exp, o_proj's input, and the MLP's gate, SiLU(gate), up and their product.
        long perToken = 2 * (4 * h + 4) + 4L * spec.NumHeads + d * (2 * h + 5 * q + 4 * inter);
        // LoRA on CUDA: dropout keeps a bool mask and the dropped input per adapted layer; A's output is kept for B.
        foreach (var l in targets) perToken += (plan.LoraDropout > 0 ? l.In * (d + 1) : 0) + d * plan.LoraRank;
        // A quantized base (DequantizedLinear) keeps no dense weight for backward: one is built at a time (quantDense),
        // but TorchSharp's custom autograd functions allocate an output-sized tensor per recorded call
        // (Node.SaveOutputsInfo) that lives as long as the layer's graph (quantOutputs).
        var quantized = plan.QuantBits != 0;
        long quantDense = quantized ? linears.Max(l => l.In * l.Out) * d : 0;
        long quantOutputs = quantized ? tokens * linears.Sum(l => l.Out) * d : 0;
        // Backward through one layer: gradients of gate, up and their product, of the layer input and output.
        long backwardWork = tokens * d * (3 * inter + 2 * h);

        long kept, recompute;
        if (plan.GradientCheckpointing)
        {
            kept = (layers + 1) * tokens * h * d;
            recompute = tokens * perToken + quantOutputs + quantDense + backwardWork;
        }
        else
        {
            kept = layers * (tokens * perToken + quantOutputs) + tokens * h * d;
            recompute = backwardWork + quantDense;
        }

        // Loss: only ChunkRows labelled rows at a time (TrainingSession.ChunkRows); their logits in the model dtype,
        // in float32, the float32 log-softmax cross_entropy keeps, its float32 gradient and that cast back; plus the
        // final norm's float32 copy and the normed rows with their gradient for the whole batch.
        long chunkRows = Math.Min(tokens, TrainingSession.LossChunkRowsFor(v));
        long loss = chunkRows * v * (2 * d + 12) + tokens * h * (4 + 2 * d);

        return new MemoryEstimate
        {
            CudaContext = CudaContextBytes,
            Weights = weights,
            Adapters = adapterParams * d,
            Gradients = gradients,
            OptimizerState = optimizer,
            KeptActivations = kept,
            LayerRecompute = recompute,
            LossChunk = loss,
            StepWorkspace = step,
            TrainableParameters = trainable,
        };
    }

    static long Ceil(long a, long b) => (a + b - 1) / b;

    static bool Targeted(IReadOnlyList<string> targets, string name) =>
        targets.Any(t => t is "all-linear" or "all_linear" || t == name);
}
