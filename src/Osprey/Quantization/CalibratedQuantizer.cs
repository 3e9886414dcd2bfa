using System.Globalization;
using Osprey.Models;
using Osprey.Models.Blocks;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// Quantizes a loaded dense model in place for a GPTQ, AWQ or FP8 export; the model then saves (<see cref="CausalLM.Save"/>)
/// as the checkpoint those formats define. GPTQ and AWQ run the decoder one layer at a time over the calibration samples:
/// the inputs of layer i are captured, its linear layers are quantized group by group (q/k/v, o, gate/up, down; each group
/// sees the inputs the earlier, already quantized groups produce), and layer i's outputs are recomputed with the quantized
/// weights to become layer i + 1's inputs. Hidden states wait in host memory between layers, so the device holds the
/// model, one sample's activations and one layer's statistics. FP8 needs no calibration.
/// </summary>
public static class CalibratedQuantizer
{
    /// <summary>Input rows kept per group for AWQ's search and for the held-out errors.</summary>
    const long KeptRows = 4096;

    /// <summary>
    /// Quantizes <paramref name="model"/>'s decoder linear layers as <paramref name="settings"/> say, calibrating on
    /// <paramref name="samples"/> (token ids; the last <paramref name="heldOut"/> are used only to measure each layer's
    /// output error against round-to-nearest). Returns those errors (empty for FP8 or without held-out samples).
    /// </summary>
    public static IReadOnlyList<QuantizationErrorRow> Quantize(CausalLM model, IReadOnlyList<int[]> samples, int heldOut, QuantizedExportSettings settings, TextWriter log) =>
        Quantize(model, samples, heldOut, settings, log, chunkRows: 0);

    /// <summary>The largest power of two not above <paramref name="size"/> that divides <paramref name="width"/> (1 at worst).</summary>
    static long Divisor(long width, long size)
    {
        var d = 1L;
        while (d * 2 <= size && width % (d * 2) == 0) d *= 2;
        return d;
    }

    /// <summary>
    /// <see cref="Quantize(CausalLM, IReadOnlyList{int[]}, int, QuantizedExportSettings, TextWriter)"/> with every
    /// chunked step (the recorders' float32 chunks, AWQ's loss chunks and clipping row batches) taking
    /// <paramref name="chunkRows"/> rows at a time instead of its default (0): tests make them small so several chunks run.
    /// </summary>
    internal static IReadOnlyList<QuantizationErrorRow> Quantize(CausalLM model, IReadOnlyList<int[]> samples, int heldOut, QuantizedExportSettings settings, TextWriter log, long chunkRows)
    {
        if (model.QuantizedLayerCount > 0) throw new OspreyException("the model is already quantized; export a GPTQ/AWQ/FP8 checkpoint from an unquantized folder.");
        var compute = model.DType;
        var report = new List<QuantizationErrorRow>();
        var bases = new List<(LinearLayer Layer, ILinearBase Base)>();
        using (no_grad())
        {
            if (settings.Method == "fp8")
            {
                foreach (var (path, layer) in DecoderLinears(model))
                {
                    using var dense = layer.DenseWeight();
                    bases.Add((layer, ToHost(Fp8Weight.Quantize(dense, settings.Fp8Scheme, compute), model.Device)));
                }
            }
            else
            {
                if (samples.Count - heldOut <= 0) throw new OspreyException("no calibration samples; pass --dataset with at least one row.");
                // AWQ's GEMM packing has scales [in / group_size, out]: every group is whole.
                if (settings.Method == "awq" && settings.GroupSize > 0
                    && DecoderLinears(model).FirstOrDefault(l => l.Layer.Weight.shape[1] % settings.GroupSize != 0) is ({ } name, { } odd))
                    throw new OspreyException($"--group_size {settings.GroupSize} does not divide the {odd.Weight.shape[1]} inputs of {name}; AWQ needs whole groups, so pass a --group_size that divides every layer's input width (e.g. {Divisor(odd.Weight.shape[1], settings.GroupSize)}) or -1 for one group per row.");
                new Run(model, samples, heldOut, settings, log, report, bases, chunkRows).All();
            }
        }
        // Finished layers waited in host memory (ToHost), so the device held the dense model and one layer's work, not
        // every packed layer besides; each now replaces its dense weight on the model's device, which frees that weight.
        foreach (var (layer, b) in bases) layer.UseBase(OnDevice(b, layer.Weight.device));
        var what = settings.Method switch
        {
            "gptq" => $"GPTQ {settings.Bits}-bit, group size {settings.GroupSize}{(settings.DescAct ? ", act-order" : "")}{(settings.Sym ? "" : ", asymmetric")}",
            "awq" => $"AWQ 4-bit GEMM, group size {settings.GroupSize}",
            _ => $"FP8 e4m3, {settings.Fp8Scheme.ToString().ToLowerInvariant()} scales",
        };
        model.MarkQuantized(new ExportedQuantization(settings.Config(), what));
        log.WriteLine($"osprey: quantized {bases.Count} linear layers ({what}).");
        if (report.Count > 0) WriteReport(report, settings.Method, log);
        return report;
    }

    /// <summary>
    /// <paramref name="packed"/> in host memory (the device copy is freed): a calibrated 7B's packed layers are 3.6 GB
    /// (4-bit) to 7 GB (FP8) that would otherwise stay on the device beside the dense model until the run ends.
    /// </summary>
    static ILinearBase ToHost(ILinearBase packed, Device from)
    {
        if (from.type == TorchSharp.DeviceType.CPU || packed.CopyTo(CPU) is not { } host) return packed;
        packed.Dispose();
        return host;
    }

    static ILinearBase OnDevice(ILinearBase packed, Device device)
    {
        if (device.type == TorchSharp.DeviceType.CPU || packed.CopyTo(device) is not { } moved) return packed;
        packed.Dispose();
        return moved;
    }

    /// <summary>The decoder's linear layers (lm_head and a score head stay dense, as the GPTQ/AWQ/FP8 tools leave them).</summary>
    static IEnumerable<(string Path, LinearLayer Layer)> DecoderLinears(CausalLM model) =>
        model.LinearLayers().Where(l => l.Path.StartsWith("model.layers.", StringComparison.Ordinal)).ToList();

    static void WriteReport(List<QuantizationErrorRow> rows, string method, TextWriter log)
    {
        log.WriteLine($"osprey: held-out output error ‖X(W−Ŵ)ᵀ‖²/‖XWᵀ‖² per projection (mean over layers): {method} vs round-to-nearest");
        foreach (var kind in rows.GroupBy(r => r.Kind))
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {kind.Key,-12} {kind.Average(r => r.MethodError),12:E3} {kind.Average(r => r.RoundToNearestError),12:E3}  ({kind.Count(r => r.MethodError < r.RoundToNearestError)}/{kind.Count()} layers below)"));
    }

    /// <summary>A group of projections that read the same input, and what produced that input (for AWQ's scales).</summary>
    sealed record Group(string[] Names, LinearLayer[] Linears, Parameter? PreviousNorm, LinearLayer? PreviousLinear);

    /// <summary>One layer-by-layer pass over the model.</summary>
    sealed class Run(CausalLM model, IReadOnlyList<int[]> samples, int heldOut, QuantizedExportSettings settings, TextWriter log,
        List<QuantizationErrorRow> report, List<(LinearLayer, ILinearBase)> bases, long chunkRows)
    {
        InputRecorder Recorder(bool hessian, long keepRows) => new(hessian, keepRows, chunkRows > 0 ? chunkRows : InputRecorder.DefaultChunkRows);

        readonly DecoderModel _decoder = model.Decoder;
        readonly Dictionary<string, LinearLayer> _linears = model.LinearLayers().ToDictionary(l => l.Path, l => l.Layer, StringComparer.Ordinal);
        readonly Dictionary<string, Parameter> _parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        readonly List<Tensor> _ids = [];
        List<Tensor> _hidden = [];

        int Calibration => samples.Count - heldOut;

        public void All()
        {
            var device = model.Device;
            foreach (var s in samples)
            {
                var ids = tensor(s.Select(v => (long)v).ToArray(), dtype: ScalarType.Int64, device: device).view(1, -1);
                _ids.Add(ids);
                using var h = _decoder.Embed(ids);
                _hidden.Add(h.to(CPU).DetachFromDisposeScope());
            }
            PlanMemory();
            var started = DateTime.UtcNow;
            try
            {
                for (var i = 0; i < _decoder.LayerCount; i++)
                {
                    var groups = Groups(i);
                    if (settings.Method == "gptq") Gptq(i, groups);
                    else Awq(i, groups);
                    // Layer i's outputs with its quantized weights are layer i + 1's inputs.
                    var next = Enumerable.Range(0, samples.Count).Select(k => Forward(i, k)).ToList();
                    foreach (var h in _hidden) h.Dispose();
                    _hidden = next;
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"osprey: {settings.Method} layer {i + 1}/{_decoder.LayerCount} done ({(DateTime.UtcNow - started).TotalSeconds:F0} s)."));
                }
            }
            finally
            {
                foreach (var h in _hidden) h.Dispose();
                foreach (var t in _ids) t.Dispose();
            }
        }

        /// <summary>
        /// Logs the device memory the run plans to take: the model (it stays on the device), the costliest group of
        /// projections (<see cref="CalibrationMemory"/>), and one sample's forward through a layer.
        /// </summary>
        void PlanMemory()
        {
            if (model.Device.type == TorchSharp.DeviceType.CPU) return;
            const double GiB = 1 << 30;
            var modelBytes = model.parameters().Sum(p => p.numel() * p.ElementSize);
            var (groupBytes, groupName) = Groups(0).Select(g =>
            {
                long rows = g.Linears.Sum(l => l.Weight.shape[0]), width = g.Linears[0].Weight.shape[1];
                var bytes = settings.Method == "gptq" ? CalibrationMemory.GptqGroupBytes(rows, width, KeptRows) : CalibrationMemory.AwqGroupBytes(rows, width, KeptRows);
                return (bytes, string.Join("+", g.Names.Select(n => n[(n.LastIndexOf('.') + 1)..])));
            }).MaxBy(t => t.bytes);
            var spec = model.Spec;
            var forward = CalibrationMemory.ForwardBytes(samples.Max(s => s.Length), spec.HiddenSize, spec.IntermediateSize, model.Decoder.parameters().First().ElementSize);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"osprey: planned device memory for {settings.Method}: model {modelBytes / GiB:F1} GiB + {groupName} step {groupBytes / GiB:F1} GiB + one sample's layer forward {forward / GiB:F1} GiB ≈ {(modelBytes + groupBytes + forward) / GiB:F1} GiB (hidden states wait in host memory)."));
        }

        /// <summary>Decoder layer <paramref name="layer"/> on sample <paramref name="k"/>'s hidden state; the output goes to host memory.</summary>
        Tensor Forward(int layer, int k)
        {
            using var scope = NewDisposeScope();
            var context = _decoder.Prepare(_ids[k], null, null, null, null);
            var h = _hidden[k].to(model.Device);
            var output = _decoder.Layer(layer, h, context);
            return output.to(CPU).MoveToOuterDisposeScope();
        }

        /// <summary>Runs layer <paramref name="layer"/> over the calibration samples (or the held-out ones) with <paramref name="recorders"/> watching.</summary>
        void Record(int layer, IReadOnlyList<(Group Group, InputRecorder Recorder)> recorders, bool heldOutSamples)
        {
            foreach (var (g, r) in recorders) g.Linears[0].SetDelta(r);
            try
            {
                var range = heldOutSamples ? Enumerable.Range(Calibration, heldOut) : Enumerable.Range(0, Calibration);
                foreach (var k in range) Forward(layer, k).Dispose();
            }
            finally
            {
                foreach (var (g, _) in recorders) g.Linears[0].SetDelta(null);
            }
        }

        List<Group> Groups(int i)
        {
            var prefix = $"model.layers.{i}.";
            LinearLayer? L(string name) => _linears.GetValueOrDefault(prefix + name);
            Parameter? P(string name) => _parameters.GetValueOrDefault(prefix + name);
            Group? Make(string[] names, Parameter? norm, LinearLayer? previous)
            {
                var present = names.Where(n => L(n) is not null).ToArray();
                return present.Length == 0 ? null : new Group(present, present.Select(n => L(n)!).ToArray(), norm, previous);
            }
            var spec = model.Spec;
            // v_proj's outputs are o_proj's inputs one to one only when every query head has its own KV head.
            var vToO = spec.NumHeads == spec.NumKvHeads ? L("self_attn.v_proj") : null;
            var mlpNorm = P("pre_feedforward_layernorm.weight") ?? P("post_attention_layernorm.weight");
            return new[]
            {
                Make(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.qkv_proj"], P("input_layernorm.weight"), null),
                Make(["self_attn.o_proj"], null, vToO),
                Make(["mlp.gate_proj", "mlp.up_proj", "mlp.gate_up_proj"], mlpNorm, null),
                Make(["mlp.down_proj"], null, L("mlp.up_proj")),
            }.OfType<Group>().ToList();
        }

        static Tensor Stacked(Group g)
        {
            var parts = g.Linears.Select(l => l.DenseWeight()).ToList();
            var w = cat(parts, 0).to_type(ScalarType.Float32);
            foreach (var p in parts) p.Dispose();
            return w;
        }

        /// <summary>Writes <paramref name="rows"/> (float32, the group's linears stacked) back into the dense weights.</summary>
        static void Assign(Group g, Tensor rows)
        {
            long start = 0;
            foreach (var l in g.Linears)
            {
                var n = l.Weight.shape[0];
                using var part = rows.narrow(0, start, n);
                l.Weight.copy_(part);
                start += n;
            }
        }

        static double RelativeError(Tensor x, Tensor w, Tensor q)
        {
            using var scope = NewDisposeScope();
            var reference = x.matmul(w.t());
            var error = x.matmul(w.sub(q).t());
            return error.square().sum().item<float>() / Math.Max(1e-30, reference.square().sum().item<float>());
        }

        void Gptq(int i, List<Group> groups)
        {
            var gptq = new GptqSettings(settings.Bits, settings.GroupSize, settings.Sym, settings.DescAct);
            foreach (var g in groups)
            {
                using var recorder = Recorder(hessian: true, keepRows: 0);
                Record(i, [(g, recorder)], heldOutSamples: false);
                using var heldOutRecorder = Recorder(hessian: false, keepRows: KeptRows);
                if (heldOut > 0) Record(i, [(g, heldOutRecorder)], heldOutSamples: true);
                using var scope = NewDisposeScope();
                var w = Stacked(g);
                using var h = recorder.TakeHessian();
                using var result = GptqSolver.Solve(w, h, gptq);
                if (heldOutRecorder.Rows() is { } x)
                {
                    using var rtn = GptqSolver.RoundToNearest(w, gptq);
                    long start = 0;
                    foreach (var (l, name) in g.Linears.Zip(g.Names))
                    {
                        var n = l.Weight.shape[0];
                        report.Add(new QuantizationErrorRow($"model.layers.{i}.{name}", name[(name.LastIndexOf('.') + 1)..],
                            RelativeError(x, w.narrow(0, start, n), result.Dequantized.narrow(0, start, n)),
                            RelativeError(x, w.narrow(0, start, n), rtn.narrow(0, start, n))));
                        start += n;
                    }
                }
                long row = 0;
                foreach (var l in g.Linears)
                {
                    var n = l.Weight.shape[0];
                    var part = new GptqResult(result.Codes.narrow(0, row, n), result.Scales.narrow(1, row, n), result.Zeros.narrow(1, row, n), result.GroupIndex.alias(), result.Dequantized.narrow(0, row, n));
                    bases.Add((l, ToHost(GptqWeight.Pack(part, settings.Bits, model.DType), model.Device)));
                    row += n;
                }
                Assign(g, result.Dequantized);
            }
        }

        void Awq(int i, List<Group> groups)
        {
            // 1. Scales, group by group on the dense layer (scaling is exact, so each group's inputs are the same function).
            var scales = new Dictionary<Group, Tensor>();
            foreach (var g in groups)
            {
                var canScale = g.PreviousNorm is not null || g.PreviousLinear is not null;
                if (!canScale) continue;
                using var recorder = Recorder(hessian: false, keepRows: KeptRows);
                Record(i, [(g, recorder)], heldOutSamples: false);
                using var scope = NewDisposeScope();
                var w = Stacked(g);
                var s = AwqSearch.SearchScales(w, recorder.Rows()!, recorder.AbsMean(), settings.GroupSize, chunkRows > 0 ? chunkRows : AwqSearch.ChunkRows);
                ApplyScales(g, s);
                scales[g] = s.MoveToOuterDisposeScope();
            }
            // 2. Clipping and quantization with one pass of inputs for all groups.
            var recorders = groups.Select(g => (g, Recorder(hessian: false, keepRows: KeptRows))).ToList();
            var heldOutRecorders = groups.Select(g => (g, Recorder(hessian: false, keepRows: KeptRows))).ToList();
            try
            {
                Record(i, recorders, heldOutSamples: false);
                if (heldOut > 0) Record(i, heldOutRecorders, heldOutSamples: true);
                for (var k = 0; k < groups.Count; k++)
                {
                    using var scope = NewDisposeScope();
                    var g = groups[k];
                    var x = recorders[k].Item2.Rows()!;
                    var xHeld = heldOutRecorders[k].Item2.Rows();
                    var s = scales.GetValueOrDefault(g);
                    foreach (var (l, name) in g.Linears.Zip(g.Names))
                    {
                        // One linear's float32 copies, int64 codes and error-table tensors at a time (a 7B's gate and up
                        // together held about 5 GB of them), and its dense weight replaced as soon as it is quantized: the
                        // group's other linears read their own weights and the recorded inputs, not this one.
                        using var linearScope = NewDisposeScope();
                        using var dense = l.DenseWeight();
                        var w = dense.to_type(ScalarType.Float32);
                        // AutoAWQ leaves q and k unclipped: their errors pass through the softmax, not the output.
                        var clipped = name is "self_attn.q_proj" or "self_attn.k_proj" or "self_attn.qkv_proj"
                            ? w : AwqSearch.Clip(w, AwqSearch.SearchClip(w, x, settings.GroupSize, rowBatch: chunkRows), settings.GroupSize);
                        var (codes, sc, zeros, dq) = AwqSearch.Quantize(clipped, settings.GroupSize);
                        bases.Add((l, ToHost(AwqWeight.Pack(codes, sc, zeros, settings.GroupSize, model.DType), model.Device)));
                        if (xHeld is not null)
                        {
                            // Compare on the original function: W·diag(s) against inputs x / s, and RTN of the unscaled W on x.
                            var wOriginal = s is null ? w : w.div(s);
                            var xOriginal = s is null ? xHeld : xHeld.mul(s);
                            var (c2, s2, z2, rtn) = AwqSearch.Quantize(wOriginal, settings.GroupSize);
                            report.Add(new QuantizationErrorRow($"model.layers.{i}.{name}", name[(name.LastIndexOf('.') + 1)..],
                                RelativeError(xHeld, w, dq), RelativeError(xOriginal, wOriginal, rtn)));
                        }
                        l.Weight.copy_(dq);
                    }
                }
            }
            finally
            {
                foreach (var (_, r) in recorders.Concat(heldOutRecorders)) r.Dispose();
                foreach (var s in scales.Values) s.Dispose();
            }
        }

        /// <summary>
        /// W·diag(s) for the group's linears and the producer of their input divided by s: an RMSNorm's weight (as
        /// (1 + w)/s − 1 where the family stores w − 1) or the previous linear's output rows and bias. Exact in real arithmetic.
        /// </summary>
        void ApplyScales(Group g, Tensor s)
        {
            foreach (var l in g.Linears)
            {
                using var w = l.Weight.to_type(ScalarType.Float32).mul(s);
                l.Weight.copy_(w);
            }
            if (g.PreviousNorm is { } norm)
            {
                using var w = norm.to_type(ScalarType.Float32);
                using var scaled = model.Spec.OffsetNorm ? w.add(1).div(s).sub(1) : w.div(s);
                norm.copy_(scaled);
            }
            else if (g.PreviousLinear is { } previous)
            {
                using var column = s.unsqueeze(1);
                using var w = previous.Weight.to_type(ScalarType.Float32).div(column);
                previous.Weight.copy_(w);
                if (previous.Bias is { } bias)
                {
                    using var b = bias.to_type(ScalarType.Float32).div(s);
                    bias.copy_(b);
                }
            }
        }
    }
}
