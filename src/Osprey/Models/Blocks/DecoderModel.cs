using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>
/// The "model." part of a causal LM: embeddings, decoder layers, final norm. Builds the RoPE tables and
/// attention masks once per forward and shares them across layers.
/// </summary>
internal sealed partial class DecoderModel : nn.Module
{
#pragma warning disable IDE0044
    Embedding embed_tokens;
    ModuleList<DecoderLayer> layers;
    RmsNorm norm;
#pragma warning restore IDE0044
    readonly DecoderSpec _spec;
    readonly RotaryEmbedding[] _ropes;     // distinct RoPE settings
    readonly int[] _ropeOfLayer;
    readonly int?[] _windowOfLayer;
    readonly ScalarType _dtype;

    /// <summary>Creates the uninitialised modules for <paramref name="spec"/> (<paramref name="deferProjections"/>: projection weights without storage, see <see cref="LinearLayer"/>).</summary>
    public DecoderModel(DecoderSpec spec, ScalarType dtype, Device device, bool deferProjections = false) : base("DecoderModel")
    {
        _spec = spec;
        _dtype = dtype;
        embed_tokens = new Embedding(spec.VocabSize, spec.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>();
        for (int i = 0; i < spec.Layers.Count; i++) layers.Add(new DecoderLayer(spec, dtype, device, deferProjections));
        norm = new RmsNorm(spec.HiddenSize, spec.RmsNormEps, spec.OffsetNorm, dtype, device);
        var distinct = spec.Layers.Select(l => l.Rope).Distinct().ToList();
        _ropes = distinct.Select(r => new RotaryEmbedding(r, spec.HeadDim, device)).ToArray();
        _ropeOfLayer = spec.Layers.Select(l => distinct.IndexOf(l.Rope)).ToArray();
        _windowOfLayer = spec.Layers.Select(l => l.SlidingWindow).ToArray();
        RegisterComponents();
    }

    /// <summary>The embedding table.</summary>
    public Embedding EmbedTokens => embed_tokens;

    /// <summary>Decoder layer <paramref name="i"/> (the managed CPU decoder reads its weights).</summary>
    internal DecoderLayer LayerAt(int i) => layers[i];

    /// <summary>The final norm.</summary>
    internal RmsNorm FinalNorm => norm;

    /// <summary>The RoPE of layer <paramref name="i"/>.</summary>
    internal RotaryEmbedding RopeOf(int i) => _ropes[_ropeOfLayer[i]];

    /// <summary>
    /// ids [B, T] → hidden [B, T, hidden]. <paramref name="keyValid"/> [B, cache length + T] marks real
    /// tokens (null: all real); <paramref name="positions"/> [B, T] defaults to cache length + 0..T-1.
    /// <paramref name="segments"/> [B, T] (packed rows; no cache, no keyValid) numbers the sample each token
    /// belongs to: tokens attend only within their own sample.
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? positions, Tensor? keyValid, KvCache? cache, Tensor? segments = null)
    {
        long t = ids.shape[1];
        var context = Prepare(ids, positions, keyValid, cache, segments);
        var h = Embed(ids);
        ForwardTrace.Mark(t, "embed, rope tables, masks");
        h = Layers(h, context);
        cache?.Advance(t);
        ForwardTrace.Start(t);
        var normed = norm.forward(h);
        ForwardTrace.Mark(t, "final norm");
        return normed;
    }

    /// <summary>
    /// One slot-decode step (see <see cref="KvCache.BeginSlotStep"/>, which the caller has started): ids [B, 1],
    /// row b at position <paramref name="positions"/>[b] (int64 [B]), attending over the first
    /// <paramref name="keys"/> positions of its cache row. Returns the normed hidden states [B, 1, hidden].
    /// </summary>
    /// <remarks>
    /// With <paramref name="uniform"/> every row sits at position keys − 1, so each row sees all
    /// <paramref name="keys"/> positions and layers without a window that cuts run unmasked attention.
    /// <paramref name="ropePositions"/> (int64 [B]), when given, are the rotary positions (a vision-language row's
    /// differ from its cache positions); masks and cache writes still follow <paramref name="positions"/>.
    /// </remarks>
    public Tensor ForwardSlots(Tensor ids, Tensor positions, KvCache cache, long keys, bool uniform = false, Tensor? ropePositions = null)
    {
        var device = ids.device;
        var rope = ropePositions ?? positions;
        var pos2 = rope.view(rope.shape[0], 1);
        var tables = _ropes.Select(r => r.Tables(pos2, _dtype)).ToArray();
        var groups = _spec.NumHeads / _spec.NumKvHeads;
        var masks = new Dictionary<int, AttentionMask>();
        foreach (var window in _windowOfLayer.Distinct())
            masks[window ?? -1] = uniform && _spec.AttentionSoftcap is null && !(window is int w && w < keys)
                ? AttentionMask.All
                : AttentionMask.ForSlotStep(positions, keys, window, groups, _dtype, device);
        var context = new LayerContext(tables, masks, cache);
        return norm.forward(Layers(Embed(ids), context));
    }

    /// <summary>
    /// Every decoder layer in turn, one dispose scope per layer: a layer's intermediates are freed as soon as it
    /// returns, and so is the previous hidden state (autograd keeps its own references when training), so peak
    /// memory is one layer's activations rather than the whole stack's.
    /// </summary>
    Tensor Layers(Tensor h, LayerContext context)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            using var layerScope = NewDisposeScope();
            var next = Layer(i, h, context).MoveToOuterDisposeScope();
            if (i > 0) h.Dispose();
            h = next;
        }
        return h;
    }

    /// <summary>Makes every layer sum its row-parallel outputs over the tensor-parallel ranks with <paramref name="reduce"/>.</summary>
    public void UseAllReduce(Action<Tensor> reduce)
    {
        foreach (var layer in layers) layer.AllReduce = reduce;
    }

    /// <summary>The number of decoder layers.</summary>
    public int LayerCount => layers.Count;

    /// <summary>
    /// The per-forward tables every layer shares (RoPE cos/sin, attention masks), built once; arguments as in
    /// <see cref="Forward"/>. Layers run one at a time with <see cref="Layer"/> (training recomputes them).
    /// </summary>
    public LayerContext Prepare(Tensor ids, Tensor? positions, Tensor? keyValid, KvCache? cache, Tensor? segments)
    {
        long b = ids.shape[0], t = ids.shape[1];
        long offset = cache?.Length ?? 0;
        var device = ids.device;
        ForwardTrace.BeginForward(t);
        positions ??= arange(offset, offset + t, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(b, t);
        var tables = _ropes.Select(r => r.Tables(positions, _dtype)).ToArray();
        var masks = new Dictionary<int, AttentionMask>();
        var groups = _spec.NumHeads / _spec.NumKvHeads;
        // Built up front, outside any per-layer scope that would otherwise free a mask shared with later layers.
        foreach (var window in _windowOfLayer.Distinct())
        {
            var windowCuts = window is int w && w < offset + t;
            AttentionMask m;
            if (segments is not null)
                m = AttentionMask.BuildPacked(segments, window, groups, device);
            else if (keyValid is not null || windowCuts || _spec.AttentionSoftcap is not null || (offset > 0 && t > 1))
                m = AttentionMask.Build(keyValid, b, offset, t, window, groups, device);
            else
                m = offset == 0 ? AttentionMask.Causal : AttentionMask.All;
            masks[window ?? -1] = m;
        }
        return new LayerContext(tables, masks, cache);
    }

    /// <summary>Token embeddings (scaled as the family does): ids [B, T] → [B, T, hidden].</summary>
    public Tensor Embed(Tensor ids)
    {
        var h = embed_tokens.forward(ids);
        if (_spec.EmbeddingScale is double s)
        {
            // The scale is rounded to the model dtype first, as in transformers. Made once and kept on the device:
            // a host-to-device copy inside a CUDA graph capture is not allowed.
            _embedScale ??= tensor(s, dtype: _dtype, device: ids.device).DetachFromDisposeScope();
            h = h * _embedScale;
        }
        return h;
    }

    Tensor? _embedScale;

    /// <summary>Decoder layer <paramref name="i"/> on h with the shared tables of <paramref name="context"/>.</summary>
    public Tensor Layer(int i, Tensor h, LayerContext context)
    {
        var (cos, sin) = context.Tables[_ropeOfLayer[i]];
        return layers[i].Forward(h, cos, sin, context.Masks[_windowOfLayer[i] ?? -1], context.Cache, i);
    }

    /// <summary>The final norm.</summary>
    public Tensor Norm(Tensor h) => norm.forward(h);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var r in _ropes) r.Dispose();
            _embedScale?.Dispose();
        }
        base.Dispose(disposing);
    }
}
