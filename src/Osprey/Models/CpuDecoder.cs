using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using Osprey.Runtime.Cpu;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// One decode step of one sequence on the CPU in managed code: the whole forward pass of a token (embedding, every
/// layer's norms, projections, RoPE, KV-cache write, attention, gated MLP, the final norm and the head) over float32
/// buffers, reading the model's weights in place and writing the same KV cache the libtorch path uses, so prefill and
/// decode can alternate between the two. It exists for speed: a libtorch decode step of a 0.5B model is ~600 small
/// operator calls of 20–25 µs each plus libtorch's bf16 GEMV at ~13–15 GB/s on one core, where this step's cost is
/// the weights' read (<see cref="CpuMatrix"/>) and a few microseconds per layer besides (issue 23's CPU target,
/// benchmarks/cpu-decode-2core.md).
/// </summary>
/// <remarks>
/// <para>Numerics follow the libtorch path in the model's dtype: float32 math throughout, and in a bfloat16 model every
/// value libtorch would store in bfloat16 (norm outputs, projection outputs, rotated q/k, attention output, residual
/// sums, the activation product, the logits) is rounded to bfloat16 at the same place. Float32 models match the libtorch
/// path to rounding order (tests: ≤ 1e-4 in the logits); bfloat16 ones to bfloat16 rounding of sums taken in another order.</para>
/// <para>What it takes: the decoder families Osprey loads (Llama, Qwen2, Qwen3 with q/k norms, Mistral with its sliding
/// window, Phi-3's stacked projections and partial RoPE, Gemma 2/3's offset and sandwich norms, embedding scale, soft
/// caps and sliding windows) in float32 or bfloat16, dense or with LLM.int8 or 4-bit GPTQ bases; one sequence, no
/// padding, no adapter. Anything else runs the libtorch path (<see cref="CausalLM.CpuDecodeRefusal"/> says why).</para>
/// </remarks>
internal sealed unsafe class CpuDecoder : IDisposable
{
    /// <summary>A linear layer as the step multiplies it: its matrix and the bias it adds (a pointer into the layer's own bias).</summary>
    sealed class Projection(LinearLayer layer, CpuMatrix matrix, Tensor? bias, Tensor? dense)
    {
        public readonly LinearLayer Layer = layer;
        public readonly ILinearBase? Base = layer.Base;
        public readonly CpuMatrix Matrix = matrix;
        public readonly Tensor? Bias = bias;
        readonly Tensor? _dense = dense;                 // the weight read in place, if any
        readonly IntPtr _address = dense is null ? IntPtr.Zero : (IntPtr)TensorMemory.Address(dense);

        /// <summary>False once the layer no longer computes what this matrix does (an adapter, a delta, a merged copy, another base).</summary>
        public bool Current => Layer.Adapter is null && !Layer.DeltaActive && !Layer.HasMerged && ReferenceEquals(Layer.Base, Base);

        /// <summary>False once the weight read in place lives elsewhere (set_ to new storage: training's flat buffers, a dequantized base).</summary>
        public bool InPlace => _dense is null || (_dense.is_contiguous() && (IntPtr)TensorMemory.Address(_dense) == _address);
    }

    /// <summary>Outputs of several projections of one input laid end to end (q|k|v, gate|up): one parallel region for all.</summary>
    sealed class Stack(Projection[] parts)
    {
        public readonly Projection[] Parts = parts;
        public readonly int Rows = parts.Sum(p => p.Matrix.Rows);
    }

    sealed class Layer
    {
        public required Norm InputNorm, PostNorm;
        public required Stack Qkv, GateUp;
        public required Projection O, Down;
        public Norm? QNorm, KNorm;
        public Norm? PreFeedforward, PostFeedforward; // Gemma 2/3's sandwich norms
        public int? Window;                            // sliding-window attention: the keys a query sees
        public required RotaryEmbedding Rope;
        public required (Tensor Keys, Tensor Values)? CacheSeen;
    }

    readonly record struct Norm(Tensor Weight, double Eps, bool Offset);

    readonly CausalLM _lm;
    readonly DecoderSpec _spec;
    readonly Layer[] _layers;
    readonly Norm _finalNorm;
    readonly Tensor _embedding;
    readonly Projection _head;
    readonly Int8RowMatrix? _ownedHead;
    readonly bool _bf16;
    readonly int _hidden, _heads, _kvHeads, _headDim, _inter;
    readonly double _scale;
    readonly double? _softcap;
    readonly string _activation;
    readonly float? _embedScale;
    readonly CpuWorkers _workers;

    // Step buffers (float32, 64-byte aligned).
    readonly float* _h, _x, _qkv, _att, _tmp, _gateUp, _act;
    readonly RotaryEmbedding[] _ropes;    // the distinct RoPEs of the layers (Gemma 3: local and global)
    readonly IntPtr[] _ropeTables;        // per RoPE, this step's cos then sin (head_dim floats each)
    float* _scoresField;
    int _scoresCapacity;
    readonly List<IntPtr> _buffers = [];

    CpuDecoder(CausalLM lm, DecoderModel model, LinearLayer? head, Int8RowMatrix? int8Head, bool bf16, int threads)
    {
        _lm = lm;
        _spec = lm.Spec;
        _bf16 = bf16;
        (_hidden, _heads, _kvHeads, _headDim, _inter) = (_spec.HiddenSize, _spec.NumHeads, _spec.NumKvHeads, _spec.HeadDim, _spec.IntermediateSize);
        _embedding = model.EmbedTokens.Weight;
        _finalNorm = NormOf(model.FinalNorm);
        _layers = new Layer[model.LayerCount];
        for (int i = 0; i < _layers.Length; i++)
        {
            var layer = model.LayerAt(i);
            var (q, k, v, qkv, o, qNorm, kNorm) = layer.SelfAttention.Parts;
            var (gate, up, gateUp, down, _) = layer.Feedforward.Parts;
            _layers[i] = new Layer
            {
                InputNorm = NormOf(layer.InputNorm),
                PostNorm = NormOf(layer.PostAttentionNorm),
                Qkv = new Stack(qkv is not null ? [ProjectionOf(qkv)] : [ProjectionOf(q!), ProjectionOf(k!), ProjectionOf(v!)]),
                GateUp = new Stack(gateUp is not null ? [ProjectionOf(gateUp)] : [ProjectionOf(gate!), ProjectionOf(up!)]),
                O = ProjectionOf(o),
                Down = ProjectionOf(down),
                QNorm = qNorm is null ? null : NormOf(qNorm),
                KNorm = kNorm is null ? null : NormOf(kNorm),
                PreFeedforward = layer.FeedforwardNorms.Pre is { } pre ? NormOf(pre) : null,
                PostFeedforward = layer.FeedforwardNorms.Post is { } post ? NormOf(post) : null,
                Window = _spec.Layers[i].SlidingWindow,
                Rope = model.RopeOf(i),
                CacheSeen = null,
            };
        }
        (_scale, _softcap) = model.LayerAt(0).SelfAttention.Scoring;
        _activation = model.LayerAt(0).Feedforward.Parts.Activation;
        // transformers rounds the embedding scale to the model's dtype before multiplying.
        if (_spec.EmbeddingScale is double s) _embedScale = bf16 ? RoundBf16((float)s) : (float)s;
        _ownedHead = int8Head;
        _head = int8Head is not null
            ? new Projection(head ?? DummyLayer(), int8Head, null, null)
            : head is not null ? ProjectionOf(head) : new Projection(DummyLayer(), MatrixOf(_embedding, null), null, _embedding);
        _workers = new CpuWorkers(threads);
        var qkvRows = (_heads + 2 * _kvHeads) * _headDim;
        _h = Buffer(_hidden);
        _x = Buffer(Math.Max(_hidden, _heads * _headDim));
        _qkv = Buffer(qkvRows);
        _att = Buffer(_heads * _headDim);
        _tmp = Buffer(Math.Max(_hidden, _spec.VocabSize));
        _gateUp = Buffer(2 * _inter);
        _act = Buffer(_inter);
        _ropes = _layers.Select(l => l.Rope).Distinct().ToArray();
        _ropeTables = _ropes.Select(_ => (IntPtr)Buffer(2L * _headDim)).ToArray();
    }

    static LinearLayer? s_dummy;

    /// <summary>A stand-in layer for heads that are not a LinearLayer (tied embeddings): never adapted, so always current.</summary>
    static LinearLayer DummyLayer() => s_dummy ??= new LinearLayer(32, 4, false, ScalarType.Float32, CPU);

    float* Buffer(long floats)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(floats, 8) * 4), 64);
        _buffers.Add((IntPtr)p);
        return p;
    }

    static Norm NormOf(RmsNorm norm)
    {
        var (w, eps, offset) = norm.Parts;
        return new Norm(w, eps, offset);
    }

    static Projection ProjectionOf(LinearLayer layer) => layer.Base is { } b
        ? new(layer, b.CpuMatrix() ?? throw new InvalidOperationException("unsupported base"), layer.Bias, null)
        : new(layer, MatrixOf(layer.Weight, layer), layer.Bias, layer.Weight);

    static CpuMatrix MatrixOf(Tensor weight, object? owner)
    {
        var rows = (int)weight.shape[0];
        var cols = (int)weight.shape[1];
        return weight.dtype switch
        {
            ScalarType.BFloat16 => new Bf16Matrix((ushort*)TensorMemory.Address(weight), rows, cols, owner ?? weight),
            ScalarType.Float32 => new F32Matrix((float*)TensorMemory.Address(weight), rows, cols, owner ?? weight),
            _ => throw new InvalidOperationException($"no CPU matrix for {weight.dtype}"),
        };
    }

    /// <summary>
    /// Why <paramref name="lm"/> cannot decode here (a sentence), or null with <paramref name="decoder"/> built. Checked once
    /// per model; what can change later (adapters, merged copies) is checked every step (<see cref="Current"/>).
    /// </summary>
    public static string? TryCreate(CausalLM lm, DecoderModel model, LinearLayer? head, Func<(Tensor Codes, Tensor Scales)?> int8Head, int threads, out CpuDecoder? decoder)
    {
        decoder = null;
        var spec = lm.Spec;
        if (lm.Device.type != DeviceType.CPU) return "the model is not on the CPU";
        if (lm.DType is not (ScalarType.Float32 or ScalarType.BFloat16)) return $"the model is in {lm.DType} (float32 and bfloat16 are supported)";
        if (!CpuMatrix.Supported) return "this CPU lacks AVX2 and FMA";
        if (TensorMemory.Unavailable() is { } why) return why;
        if (spec.Activation is not ("silu" or "swish" or "gelu_pytorch_tanh" or "gelu_new" or "relu")) return $"activation {spec.Activation} is not supported";
        if (spec.NumHeads % spec.NumKvHeads != 0) return "the query heads are not a multiple of the key/value heads";
        if (spec.HeadDim % 16 != 0 || spec.HiddenSize % CpuMatrix.ColumnMultiple != 0 || spec.IntermediateSize % CpuMatrix.ColumnMultiple != 0
            || spec.NumHeads * spec.HeadDim % CpuMatrix.ColumnMultiple != 0)
            return "a width is not a multiple of 32";
        for (int i = 0; i < model.LayerCount; i++)
        {
            var rope = model.RopeOf(i);
            if (rope.MultiSection) return "multimodal RoPE (M-RoPE) is not supported";
            var layer = model.LayerAt(i);
            var (q, k, v, qkv, o, _, _) = layer.SelfAttention.Parts;
            var (gate, up, gateUp, down, _) = layer.Feedforward.Parts;
            foreach (var l in new[] { q, k, v, qkv, o, gate, up, gateUp, down })
                if (l is not null && Refusal(l) is { } r) return r;
        }
        if (head is not null && Refusal(head) is { } hr) return "lm_head: " + hr;
        Int8RowMatrix? int8 = null;
        if (head?.Base is null && int8Head() is { } copy)
        {
            using var scales = copy.Scales.to_type(ScalarType.Float32);
            int8 = new Int8RowMatrix((sbyte*)TensorMemory.Address(copy.Codes), scales.data<float>().ToArray(), (int)copy.Codes.shape[1], copy.Codes);
        }
        decoder = new CpuDecoder(lm, model, head, int8, lm.DType == ScalarType.BFloat16, threads) { HeadCodes = int8 is null ? null : int8Head()?.Codes };
        return null;
    }

    /// <summary>The int8 head copy's codes this decoder reads (null: the dense or quantized head).</summary>
    public Tensor? HeadCodes { get; private init; }

    /// <summary>
    /// Whether the weights this decoder reads in place are still where it read them, and its head is the one wanted
    /// (<paramref name="int8HeadCodes"/>: the model's int8 copy when that is on, else null). False means: build it again.
    /// </summary>
    public bool StillValid(Tensor? int8HeadCodes)
    {
        if (!ReferenceEquals(HeadCodes, int8HeadCodes)) return false;
        foreach (var l in _layers)
        {
            foreach (var p in l.Qkv.Parts) if (!p.InPlace) return false;
            foreach (var p in l.GateUp.Parts) if (!p.InPlace) return false;
            if (!l.O.InPlace || !l.Down.InPlace) return false;
        }
        return _head.InPlace;
    }

    static string? Refusal(LinearLayer l)
    {
        if (l.Base is { } b)
            return b.CpuMatrix() is null ? $"{b.GetType().Name} weights have no managed CPU kernel" : null;
        if (!l.Weight.is_contiguous() || l.Weight.dtype is not (ScalarType.Float32 or ScalarType.BFloat16)) return "a projection weight is not a contiguous float32/bfloat16 matrix";
        if (l.Bias is { } bias && (!bias.is_contiguous() || bias.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))) return "a bias is not contiguous float32/bfloat16";
        return null;
    }

    /// <summary>Whether every layer still computes what this decoder was built from (no adapter, delta or merged copy since).</summary>
    public bool Current()
    {
        foreach (var l in _layers)
        {
            foreach (var p in l.Qkv.Parts) if (!p.Current) return false;
            foreach (var p in l.GateUp.Parts) if (!p.Current) return false;
            if (!l.O.Current || !l.Down.Current) return false;
        }
        return _head.Current;
    }

    /// <summary>
    /// Runs token <paramref name="token"/> at rotary position <paramref name="position"/> through the model, writing its
    /// keys and values at <paramref name="slot"/> of row 0 of <paramref name="cache"/> and attending to slots
    /// [0, slot]; returns the logits [1, 1, vocab] as float32. The caller advances the cache (or not, in a slot step).
    /// </summary>
    public Tensor Step(long token, long position, int slot, KvCache cache)
    {
        if (token < 0 || token >= _embedding.shape[0]) throw new ArgumentOutOfRangeException(nameof(token), $"token id {token} is outside the embedding's {_embedding.shape[0]} rows");
        if (slot >= cache.Capacity) throw new InvalidOperationException($"KV cache full: {slot} + 1 slots exceed its capacity of {cache.Capacity}.");
        PhaseTimer.Restart(CPU);
        Embed(token);
        RopeTables(position);
        for (int i = 0; i < _layers.Length; i++) LayerStep(i, _layers[i], cache, slot);
        RmsNormInto(_finalNorm, _h, _x, _hidden);
        PhaseTimer.Mark(CPU, "cpu decode: norms, rope, residuals");
        var logits = empty(1, 1, _spec.VocabSize, dtype: ScalarType.Float32);
        var y = (float*)TensorMemory.Address(logits);
        var x = _x;
        var m = _head.Matrix;
        _workers.Run(m.Rows, 16, (from, to) => m.Multiply(x, y, from, to));
        if (_bf16) Round(y, m.Rows);
        if (_spec.FinalLogitSoftcap is double cap)
        {
            // Gemma 2: tanh(logits / cap)·cap.
            var c = (float)cap;
            for (int i = 0; i < m.Rows; i++) y[i] = MathF.Tanh(y[i] / c) * c;
            if (_bf16) Round(y, m.Rows);
        }
        PhaseTimer.Mark(CPU, "cpu decode: head");
        return logits;
    }

    void Embed(long token)
    {
        if (_embedding.dtype == ScalarType.BFloat16)
        {
            var row = (ushort*)TensorMemory.Address(_embedding) + token * _hidden;
            for (int i = 0; i < _hidden; i++) _h[i] = Bf16ToFloat(row[i]);
        }
        else new ReadOnlySpan<float>((float*)TensorMemory.Address(_embedding) + token * _hidden, _hidden).CopyTo(new Span<float>(_h, _hidden));
        if (_embedScale is float s)
        {
            for (int i = 0; i < _hidden; i++) _h[i] *= s;
            if (_bf16) Round(_h, _hidden);
        }
    }

    /// <summary>
    /// cos/sin of <paramref name="position"/> for each distinct RoPE, once per step, from the model's own tables (so every
    /// scaling rule is the one libtorch uses) in the model dtype's rounding.
    /// </summary>
    void RopeTables(long position)
    {
        using var scope = NewDisposeScope();
        using var pos = tensor(new[] { position }, [1, 1]);
        for (int r = 0; r < _ropes.Length; r++)
        {
            var (cos, sin) = _ropes[r].Tables(pos, _bf16 ? ScalarType.BFloat16 : ScalarType.Float32);
            var table = (float*)_ropeTables[r];
            var rotary = _ropes[r].RotaryDim;
            cos.to_type(ScalarType.Float32).contiguous().data<float>().CopyTo(new Span<float>(table, rotary));
            sin.to_type(ScalarType.Float32).contiguous().data<float>().CopyTo(new Span<float>(table + _headDim, rotary));
        }
    }

    void LayerStep(int index, Layer layer, KvCache cache, int slot)
    {
        int qRows = _heads * _headDim, kvRows = _kvHeads * _headDim;
        // Attention.
        RmsNormInto(layer.InputNorm, _h, _x, _hidden);
        PhaseTimer.Mark(CPU, "cpu decode: norms, rope, residuals");
        MultiplyStack(layer.Qkv, _x, _qkv);
        PhaseTimer.Mark(CPU, "cpu decode: q/k/v projections");
        float* q = _qkv, k = _qkv + qRows, v = _qkv + qRows + kvRows;
        if (layer.QNorm is { } qn)
        {
            for (int hd = 0; hd < _heads; hd++) RmsNormInto(qn, q + hd * _headDim, q + hd * _headDim, _headDim);
            for (int hd = 0; hd < _kvHeads; hd++) RmsNormInto(layer.KNorm!.Value, k + hd * _headDim, k + hd * _headDim, _headDim);
        }
        var rope = Array.IndexOf(_ropes, layer.Rope);
        var cos = (float*)_ropeTables[rope];
        var rotary = layer.Rope.RotaryDim;
        for (int hd = 0; hd < _heads; hd++) Rotate(q + hd * _headDim, cos, cos + _headDim, rotary);
        for (int hd = 0; hd < _kvHeads; hd++) Rotate(k + hd * _headDim, cos, cos + _headDim, rotary);
        if (_bf16) Round(q, (_heads + _kvHeads) * _headDim);
        var (keys, values) = cache.Buffers(index);
        var capacity = (int)cache.Capacity;
        WriteCache(keys, k, slot, capacity);
        WriteCache(values, v, slot, capacity);
        PhaseTimer.Mark(CPU, "cpu decode: norms, rope, residuals");
        Attend(keys, values, q, slot + 1, capacity, layer.Window);
        PhaseTimer.Mark(CPU, "cpu decode: attention");
        var o = layer.O;
        MultiplyOne(o, _att, _tmp);
        PhaseTimer.Mark(CPU, "cpu decode: o projection");
        // Residual, post-attention norm, gated MLP, residual (Gemma 2/3: the attention output is normed before the
        // residual add, the MLP's input by its own norm after it, and the MLP's output normed before its add).
        if (layer.PreFeedforward is { } preNorm)
        {
            RmsNormInto(layer.PostNorm, _tmp, _tmp, _hidden);
            Add(_h, _tmp, _hidden);
            RmsNormInto(preNorm, _h, _x, _hidden);
        }
        else
        {
            Add(_h, _tmp, _hidden);
            RmsNormInto(layer.PostNorm, _h, _x, _hidden);
        }
        PhaseTimer.Mark(CPU, "cpu decode: norms, rope, residuals");
        MultiplyStack(layer.GateUp, _x, _gateUp);
        PhaseTimer.Mark(CPU, "cpu decode: gate/up projections");
        Activate(_gateUp, _gateUp + _inter, _act, _inter);
        PhaseTimer.Mark(CPU, "cpu decode: activation");
        MultiplyOne(layer.Down, _act, _tmp);
        PhaseTimer.Mark(CPU, "cpu decode: down projection");
        if (layer.PostFeedforward is { } postNorm) RmsNormInto(postNorm, _tmp, _tmp, _hidden);
        Add(_h, _tmp, _hidden);
    }

    void MultiplyStack(Stack stack, float* x, float* y)
    {
        var parts = stack.Parts;
        _workers.Run(stack.Rows, 16, (from, to) =>
        {
            var start = 0;
            foreach (var p in parts)
            {
                var rows = p.Matrix.Rows;
                int a = Math.Max(from, start), b = Math.Min(to, start + rows);
                if (a < b) p.Matrix.Multiply(x, y + start, a - start, b - start);
                start += rows;
            }
        });
        var offset = 0;
        foreach (var p in parts)
        {
            AddBias(p, y + offset);
            offset += p.Matrix.Rows;
        }
    }

    void MultiplyOne(Projection p, float* x, float* y)
    {
        var m = p.Matrix;
        _workers.Run(m.Rows, 16, (from, to) => m.Multiply(x, y, from, to));
        AddBias(p, y);
    }

    /// <summary>Adds the bias (libtorch's addmm adds it before the one rounding of the output) and rounds.</summary>
    void AddBias(Projection p, float* y)
    {
        var rows = p.Matrix.Rows;
        if (p.Bias is { } bias)
        {
            if (bias.dtype == ScalarType.BFloat16)
            {
                var b = (ushort*)TensorMemory.Address(bias);
                for (int i = 0; i < rows; i++) y[i] += Bf16ToFloat(b[i]);
            }
            else
            {
                var b = (float*)TensorMemory.Address(bias);
                for (int i = 0; i < rows; i++) y[i] += b[i];
            }
        }
        if (_bf16) Round(y, rows);
    }

    /// <summary>RMSNorm as transformers computes it: float32 x·rsqrt(mean(x²) + eps), cast to the dtype, times the weight (Gemma: times 1 + weight in float32).</summary>
    void RmsNormInto(Norm norm, float* x, float* y, int n)
    {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (double)x[i] * x[i];
        var inv = 1.0f / MathF.Sqrt((float)(sum / n) + (float)norm.Eps);
        var w = TensorMemory.Address(norm.Weight);
        var wbf = norm.Weight.dtype == ScalarType.BFloat16;
        for (int i = 0; i < n; i++)
        {
            var weight = wbf ? Bf16ToFloat(((ushort*)w)[i]) : ((float*)w)[i];
            var normed = x[i] * inv;
            if (norm.Offset) y[i] = normed * (1f + weight);
            else y[i] = weight * (_bf16 ? RoundBf16(normed) : normed);
        }
        if (_bf16) Round(y, n);
    }

    /// <summary>x·cos + rotate_half(x)·sin over the rotary part of one head (all of it, or Phi-3's first half), in place.</summary>
    static void Rotate(float* x, float* cos, float* sin, int rotary)
    {
        var half = rotary / 2;
        for (int i = 0; i < half; i++)
        {
            float a = x[i], b = x[i + half];
            x[i] = a * cos[i] - b * sin[i];
            x[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }

    void WriteCache(Tensor buffer, float* src, int slot, int capacity)
    {
        var baseAddress = TensorMemory.Address(buffer);
        for (int hd = 0; hd < _kvHeads; hd++)
        {
            long at = ((long)hd * capacity + slot) * _headDim;
            if (_bf16)
            {
                var dst = (ushort*)baseAddress + at;
                for (int i = 0; i < _headDim; i++) dst[i] = FloatToBf16(src[hd * _headDim + i]);
            }
            else new ReadOnlySpan<float>(src + hd * _headDim, _headDim).CopyTo(new Span<float>((float*)baseAddress + at, _headDim));
        }
    }

    /// <summary>Causal attention of the query heads over the first <paramref name="length"/> cached positions (grouped: query head h reads key head h / group), into <see cref="_att"/>.</summary>
    void Attend(Tensor keys, Tensor values, float* q, int length, int capacity, int? window)
    {
        // A sliding window shows query i the keys j with i − j < window (AttentionMask's rule).
        var first = window is int w ? Math.Max(0, length - w) : 0;
        var softcap = _softcap is double sc ? (float)sc : 0f;
        if (_scoresCapacity < length * _heads)
        {
            if (_scoresField is not null) { NativeMemory.AlignedFree(_scoresField); _buffers.Remove((IntPtr)_scoresField); }
            _scoresCapacity = Math.Max(length * _heads, 1024) * 2;
            _scoresField = Buffer(_scoresCapacity);
        }
        var kBase = TensorMemory.Address(keys);
        var vBase = TensorMemory.Address(values);
        var scores = _scoresField;
        var group = _heads / _kvHeads;
        var d = _headDim;
        var scale = (float)_scale;
        var bf16 = _bf16;
        var att = _att;
        _workers.Run(_heads, 1, (from, to) =>
        {
            for (int hd = from; hd < to; hd++)
            {
                var kv = hd / group;
                float* qh = q + hd * d, s = scores + (long)hd * length, o = att + hd * d;
                long headStart = (long)kv * capacity * d;
                float max = float.NegativeInfinity;
                for (int t = first; t < length; t++)
                {
                    var dot = bf16 ? DotBf16(qh, (ushort*)kBase + headStart + (long)t * d, d) : DotF32(qh, (float*)kBase + headStart + (long)t * d, d);
                    s[t] = dot * scale;
                    if (softcap > 0) s[t] = MathF.Tanh(s[t] / softcap) * softcap; // Gemma 2's soft-capped scores
                    if (s[t] > max) max = s[t];
                }
                float total = 0;
                for (int t = first; t < length; t++) { s[t] = MathF.Exp(s[t] - max); total += s[t]; }
                var invTotal = 1f / total;
                new Span<float>(o, d).Clear();
                for (int t = first; t < length; t++)
                {
                    var p = s[t] * invTotal;
                    if (softcap > 0 && bf16) p = RoundBf16(p); // the eager path casts the probabilities to the dtype
                    if (bf16) AxpyBf16(p, (ushort*)vBase + headStart + (long)t * d, o, d);
                    else AxpyF32(p, (float*)vBase + headStart + (long)t * d, o, d);
                }
            }
        });
        if (_bf16) Round(_att, _heads * _headDim);
    }

    static float DotF32(float* a, float* b, int n)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 8) acc = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc);
        return Vector256.Sum(acc);
    }

    static float DotBf16(float* a, ushort* b, int n)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 8) acc = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Bf16x8(b + i), acc);
        return Vector256.Sum(acc);
    }

    static void AxpyF32(float p, float* v, float* o, int n)
    {
        var pv = Vector256.Create(p);
        for (int i = 0; i < n; i += 8) Avx.Store(o + i, Fma.MultiplyAdd(Avx.LoadVector256(v + i), pv, Avx.LoadVector256(o + i)));
    }

    static void AxpyBf16(float p, ushort* v, float* o, int n)
    {
        var pv = Vector256.Create(p);
        for (int i = 0; i < n; i += 8) Avx.Store(o + i, Fma.MultiplyAdd(Bf16x8(v + i), pv, Avx.LoadVector256(o + i)));
    }

    static Vector256<float> Bf16x8(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    /// <summary>h += a, rounded as a bfloat16 add rounds.</summary>
    void Add(float* h, float* a, int n)
    {
        for (int i = 0; i < n; i++) h[i] += a[i];
        if (_bf16) Round(h, n);
    }

    /// <summary>act(gate)·up: the activation's output is rounded before the product, as libtorch stores it.</summary>
    void Activate(float* gate, float* up, float* y, int n)
    {
        for (int i = 0; i < n; i++)
        {
            var g = gate[i];
            var a = _activation switch
            {
                "silu" or "swish" => g / (1f + MathF.Exp(-g)),
                "relu" => MathF.Max(g, 0f),
                _ => 0.5f * g * (1f + MathF.Tanh(0.7978845608028654f * (g + 0.044715f * g * g * g))),
            };
            y[i] = (_bf16 ? RoundBf16(a) : a) * up[i];
        }
        if (_bf16) Round(y, n);
    }

    static float Bf16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>float32 → bfloat16 bits, round to nearest even (as libtorch's cast; no NaNs arise here).</summary>
    static ushort FloatToBf16(float f)
    {
        var u = (uint)BitConverter.SingleToInt32Bits(f);
        return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    static float RoundBf16(float f) => Bf16ToFloat(FloatToBf16(f));

    static void Round(float* x, int n)
    {
        int i = 0;
        var bias = Vector256.Create(0x7FFFu);
        var one = Vector256.Create(1u);
        var mask = Vector256.Create(0xFFFF0000u);
        for (; i + 8 <= n; i += 8)
        {
            var u = Avx.LoadVector256((uint*)(x + i));
            var r = Avx2.And(Avx2.Add(Avx2.Add(u, bias), Avx2.And(Avx2.ShiftRightLogical(u, 16), one)), mask);
            Avx.Store((uint*)(x + i), r);
        }
        for (; i < n; i++) x[i] = RoundBf16(x[i]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _workers.Dispose();
        // Dense matrices hold nothing native; a quantized base owns its matrix.
        _ownedHead?.Dispose();
        foreach (var b in _buffers) NativeMemory.AlignedFree((void*)b);
        _buffers.Clear();
        GC.KeepAlive(_lm);
    }
}
