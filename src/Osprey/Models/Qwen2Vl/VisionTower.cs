using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>
/// The "visual" part of Qwen2-VL / Qwen2.5-VL: patch embedding, ViT blocks with a 2-D rotary embedding (half the
/// rotary frequencies follow a patch's row, half its column), and the patch merger. Qwen2.5-VL first reorders the
/// merge units window by window (window_size pixels square), attends within windows except in
/// fullatt_block_indexes, and restores the order after the merger.
/// </summary>
internal sealed class VisionTower : nn.Module
{
#pragma warning disable IDE0044
    PatchEmbed patch_embed;
    ModuleList<VisionBlock> blocks;
    PatchMerger merger;
#pragma warning restore IDE0044
    readonly VisionSpec _s;

    public VisionTower(VisionSpec s, ScalarType dtype, Device device) : base("VisionTower")
    {
        _s = s;
        patch_embed = new PatchEmbed(s, dtype, device);
        blocks = new ModuleList<VisionBlock>();
        for (var i = 0; i < s.Depth; i++) blocks.Add(new VisionBlock(s, dtype, device));
        merger = new PatchMerger(s, dtype, device);
        RegisterComponents();
    }

    public VisionSpec Spec => _s;

    /// <summary>Images sent through <see cref="Encode"/> so far (tests and the training log count tower passes with it).</summary>
    public long ImagesEncoded => Interlocked.Read(ref _imagesEncoded);

    long _imagesEncoded;

    /// <summary>The features [tokens, out] of <paramref name="images"/> in order: their pixel values stacked and sent
    /// through <see cref="Forward"/> in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public Tensor Encode(IReadOnlyList<Osprey.Images.ImagePatches> images, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        Interlocked.Add(ref _imagesEncoded, images.Count);
        var dim = images[0].PatchDim;
        foreach (var i in images)
            if (i.PatchDim != dim) throw new ArgumentException("images of different patch sizes");
        var rows = images.Sum(i => (long)i.PixelValues.Length) / dim;
        var pixels = _staging.Stage(images.Select(i => i.PixelValues), [rows, dim], device, dtype);
        Osprey.Runtime.PhaseTimer.Mark(device, "image patches upload");
        var features = Forward(pixels, images.Select(i => (i.GridT, i.GridH, i.GridW)).ToList());
        Osprey.Runtime.PhaseTimer.Mark(device, "vision tower forward");
        return features.MoveToOuterDisposeScope();
    }

    readonly Osprey.Images.PixelStaging _staging = new();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _staging.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>pixel_values [N, patch dim] of images with grids (t, h, w) in patches → features [N / merge², out].</summary>
    public Tensor Forward(Tensor pixelValues, IReadOnlyList<(int T, int H, int W)> grids)
    {
        using var scope = NewDisposeScope();
        var device = pixelValues.device;
        long n = pixelValues.shape[0];
        long expected = grids.Sum(g => (long)g.T * g.H * g.W);
        if (n != expected) throw new OspreyException($"pixel_values has {n} patches but the image grids add up to {expected}.");
        var h = patch_embed.forward(pixelValues);
        var (rowPos, colPos) = PatchPositions(grids);
        var freqs = RotaryFrequencies(rowPos, colPos, device); // [N, head_dim / 2]
        var unit = _s.MergeSize * _s.MergeSize;
        var frames = new List<long> { 0 };
        foreach (var g in grids)
            for (var t = 0; t < g.T; t++) frames.Add(frames[^1] + (long)g.H * g.W);
        long[] full = frames.ToArray(), windows = full;
        Tensor? order = null;
        if (_s.Windowed)
        {
            var (index, cu) = WindowIndex(grids);
            windows = cu;
            order = tensor(index, dtype: ScalarType.Int64, device: device);
            h = h.view(n / unit, unit, -1).index_select(0, order).view(n, -1);
            freqs = freqs.view(n / unit, unit, -1).index_select(0, order).view(n, -1);
        }
        var emb = cat([freqs, freqs], -1);
        var cos = emb.cos();
        var sin = emb.sin();
        for (var i = 0; i < blocks.Count; i++)
        {
            var segments = !_s.Windowed || _s.FullAttentionBlocks.Contains(i) ? full : windows;
            h = blocks[i].Forward(h, cos, sin, segments);
        }
        var merged = merger.forward(h);
        if (order is not null) merged = merged.index_select(0, order.argsort());
        return merged.MoveToOuterDisposeScope();
    }

    /// <summary>Each patch's row and column in its image, in the processor's order (merge windows first).</summary>
    (long[] Rows, long[] Cols) PatchPositions(IReadOnlyList<(int T, int H, int W)> grids)
    {
        var m = _s.MergeSize;
        var rows = new List<long>();
        var cols = new List<long>();
        foreach (var (t, gh, gw) in grids)
            for (var f = 0; f < t; f++)
                for (var bh = 0; bh < gh / m; bh++)
                    for (var bw = 0; bw < gw / m; bw++)
                        for (var mh = 0; mh < m; mh++)
                            for (var mw = 0; mw < m; mw++)
                            {
                                rows.Add(bh * m + mh);
                                cols.Add(bw * m + mw);
                            }
        return (rows.ToArray(), cols.ToArray());
    }

    /// <summary>transformers' VisionRotaryEmbedding(head_dim / 2, θ = 10000) looked up by row then by column.</summary>
    Tensor RotaryFrequencies(long[] rows, long[] cols, Device device)
    {
        var dim = _s.HeadDim / 2;
        var exponent = arange(0, dim, 2, dtype: ScalarType.Int64, device: device).to_type(ScalarType.Float32) / dim;
        var inv = full(exponent.shape, 10000.0, dtype: ScalarType.Float32, device: device).pow(exponent).reciprocal();
        var r = tensor(rows, dtype: ScalarType.Int64, device: device).to_type(ScalarType.Float32).unsqueeze(-1) * inv;
        var c = tensor(cols, dtype: ScalarType.Int64, device: device).to_type(ScalarType.Float32).unsqueeze(-1) * inv;
        return cat([r, c], -1);
    }

    /// <summary>
    /// Qwen2.5-VL's get_window_index: merge units regrouped window by window (windows of window_size / merge /
    /// patch units per side, the last ones cut short), and the cumulative patch counts that bound each window.
    /// </summary>
    (long[] Index, long[] CuSeqlens) WindowIndex(IReadOnlyList<(int T, int H, int W)> grids)
    {
        var m = _s.MergeSize;
        var ws = _s.WindowSize / m / _s.PatchSize;
        if (ws <= 0) throw new OspreyException($"vision_config window_size {_s.WindowSize} is smaller than one merge unit ({m * _s.PatchSize} pixels).");
        var index = new List<long>();
        var cu = new List<long> { 0 };
        long baseId = 0;
        foreach (var (t, gh, gw) in grids)
        {
            int lh = gh / m, lw = gw / m;
            for (var f = 0; f < t; f++)
                for (var wy = 0; wy < lh; wy += ws)
                    for (var wx = 0; wx < lw; wx += ws)
                    {
                        var count = 0;
                        for (var y = wy; y < Math.Min(wy + ws, lh); y++)
                            for (var x = wx; x < Math.Min(wx + ws, lw); x++)
                            {
                                index.Add(baseId + (long)f * lh * lw + (long)y * lw + x);
                                count++;
                            }
                        cu.Add(cu[^1] + (long)count * m * m);
                    }
            baseId += (long)t * lh * lw;
        }
        return (index.ToArray(), cu.ToArray());
    }
}
