using Osprey.Images;
using Osprey.Models.Qwen2Vl;
using static TorchSharp.torch;

namespace Osprey.Models;

// A vision-language model loaded through the same path as every text model: Qwen2-VL / Qwen2.5-VL's tower sits beside
// the language model under its hub name ("visual."), a LLaVA's under transformers' names ("vision_tower.",
// "multi_modal_projector.", "image_newline"), so the serving engine, adapters and saving see one model. Text-only
// prompts run exactly as for a text model (M-RoPE with three equal rows is ordinary RoPE). What differs between the
// families is confined to this file (features, positions) and to VisionInput (prompt tokens, preprocessing, names).
public sealed partial class CausalLM
{
    /// <summary>The Qwen2-VL part of the config (tower shape, image token ids); null for other models.</summary>
    internal VisionParts? Vision { get; }

    // A LLaVA's config side (feature layers, projector, anyres pinpoints); null for other models.
    readonly Llava.LlavaSpec? _llava;
    // A LLaVA's checkpoint name of each loaded tensor, so Save writes the layout it read.
    readonly Dictionary<string, string> _storedNames = new(StringComparer.Ordinal);

    readonly List<string> _unusedLinear = [];

    /// <summary>Linear layers of the checkpoint that the model never runs and so does not hold (a LLaVA's SigLIP pooling
    /// head: <see cref="Llava.LlavaNames.UnusedLinear"/>), in the model's names; PEFT's target matching still sees them.</summary>
    internal IReadOnlyList<string> UnusedLinearModules => _unusedLinear;
    VisionInput? _imageInput;

    /// <summary>Whether the model takes images (Qwen2-VL, Qwen2.5-VL, LLaVA or LLaVA-NeXT).</summary>
    public bool IsVisionLanguage => visual is not null || vision_tower is not null;

    /// <summary>The placeholder token id each image token of a prompt stands in for; -1 for a text model.</summary>
    public int ImageTokenId => Vision?.ImageTokenId ?? _llava?.ImageTokenId ?? -1;

    /// <summary>
    /// The model folder's image side (preprocessing, token counts, prompt tokens, tower and aligner names), read on first
    /// use; null for a text model or one not loaded from a folder.
    /// </summary>
    public VisionInput? ImageInput => !IsVisionLanguage || SourceDirectory is null ? null : _imageInput ??= VisionInput.Read(SourceDirectory);

    /// <summary>The parameters of the vision tower and aligner (none for a text model).</summary>
    IEnumerable<TorchSharp.Modules.Parameter> VisionParameters() =>
        new nn.Module?[] { visual, vision_tower, multi_modal_projector }.Where(m => m is not null).SelectMany(m => m!.parameters())
            .Concat(image_newline is null ? [] : [image_newline]);

    /// <summary>
    /// Where image features come from while the tower and aligner cannot change (a training recipe attaches it when they
    /// are frozen and carry no adapters; its owner disposes it); null: every image goes through the tower.
    /// </summary>
    internal VisionFeatureCache? FeatureCache { get; set; }

    /// <summary>Images the vision tower has encoded since the model was loaded (counted by the tower itself).</summary>
    internal long VisionTowerImages => visual?.ImagesEncoded ?? vision_tower?.ImagesEncoded ?? 0;

    /// <summary>Whether <paramref name="name"/> (a parameter or adapter key) lies in the vision tower or the aligner.</summary>
    internal static bool IsVisionName(string name) =>
        name.StartsWith("visual.", StringComparison.Ordinal) || name.StartsWith("vision_tower.", StringComparison.Ordinal)
        || name.StartsWith("multi_modal_projector.", StringComparison.Ordinal) || name == "image_newline";

    /// <summary>
    /// Prefill of one prompt with images into an empty one-row cache (<see cref="Blocks.KvCache.Rows"/> of a slot pool):
    /// ids [1, T] whose image placeholders are replaced, in order, by the image features of <paramref name="images"/>
    /// (at M-RoPE positions for Qwen2-VL). Returns the logits [1, vocab] of the last token and the row's position delta:
    /// a later token at cache position p takes rotary position p + delta (Qwen2-VL: an image of h×w tokens spans
    /// max(h, w) positions, not h·w; 0 for LLaVA, whose positions are the language model's ordinary ones).
    /// </summary>
    public (Tensor Logits, long RopeDelta) PrefillWithImages(Tensor ids, IReadOnlyList<ProcessedImage> images, Blocks.KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(images);
        if (!IsVisionLanguage) throw new InvalidOperationException($"a {Spec.ModelType} model takes no images");
        if (ids.shape[0] != 1) throw new ArgumentException("one prompt at a time", nameof(ids));
        using var scope = NewDisposeScope();
        long t = ids.shape[1];
        var h = EmbedWithImages(ids, images);
        var (positions, deltas) = ImagePositions(ids, images);
        var hidden = model.ForwardEmbeds(h, positions, null, cache);
        var last = hidden.narrow(1, t - 1, 1);
        var logits = Head(last);
        return (logits.squeeze(1).MoveToOuterDisposeScope(), deltas[0]);
    }

    /// <summary>The image feature rows [rows, hidden] of <paramref name="images"/>, in order.</summary>
    internal Tensor ImageFeatures(IReadOnlyList<ProcessedImage> images)
    {
        static T As<T>(ProcessedImage i) where T : ProcessedImage =>
            i as T ?? throw new OspreyException("the images were not processed for this model; use the model folder's image processor.");
        if (visual is not null)
        {
            var patches = images.Select(As<ImagePatches>).ToList();
            var tower = visual;
            return FeatureCache is { } cache && Vision is not null
                ? cache.Features(patches, i => i.TokenCount(Vision.Spec.MergeSize), Device, misses => tower.Encode(misses, Device, DType))
                : tower.Encode(patches, Device, DType);
        }
        if (_llava is { } llava)
        {
            var tiles = images.Select(As<ImageTiles>).ToList();
            Tensor Encode(IReadOnlyList<ImageTiles> batch) => Llava.LlavaImages.Features(llava, vision_tower!, multi_modal_projector!, image_newline, batch, Device, DType);
            return FeatureCache is { } cache
                ? cache.Features(tiles, i => Llava.LlavaImages.TokenCount(llava, i), Device, Encode)
                : Encode(tiles);
        }
        throw new InvalidOperationException($"a {Spec.ModelType} model takes no images");
    }

    /// <summary>
    /// Token embeddings [B, T, hidden] of ids [B, T] with the image placeholder rows replaced, in order, by the image
    /// features of <paramref name="images"/> (shared by inference and training: gradients reach the tower and aligner
    /// when their weights train).
    /// </summary>
    Tensor EmbedWithImages(Tensor ids, IReadOnlyList<ProcessedImage>? images)
    {
        var h = model.Embed(ids);
        if (images is not { Count: > 0 }) return h;
        var features = ImageFeatures(images).to_type(h.dtype);
        var where = ids.reshape(-1).eq(ImageTokenId).nonzero().squeeze(-1);
        if (where.shape[0] != features.shape[0])
            throw new OspreyException($"the input has {where.shape[0]} image placeholder tokens but the images give {features.shape[0]} features; each image needs exactly its own count of image tokens.");
        return h.reshape(-1, h.shape[^1]).index_copy(0, where, features).view(h.shape);
    }

    /// <summary>
    /// M-RoPE positions [3, B, T] of packed rows: <paramref name="positionIds"/> [B, T] restart at 0 where each packed
    /// sample (or the padding after the last) begins, and each such segment gets the positions transformers'
    /// get_rope_index gives it alone, with its own images (<paramref name="images"/> hold every row's, in
    /// placeholder order). ms-swift's packing of Qwen2-VL rows does the same: each sample's position_ids are
    /// computed before the samples are concatenated.
    /// </summary>
    Tensor PackedImagePositions(Tensor ids, Tensor positionIds, IReadOnlyList<ProcessedImage> images)
    {
        if (Vision is null) throw new InvalidOperationException($"a {Spec.ModelType} model takes no images");
        long b = ids.shape[0], t = ids.shape[1];
        var hostIds = ids.to(CPU).to_type(ScalarType.Int64).data<long>().ToArray();
        var hostPos = positionIds.to(CPU).to_type(ScalarType.Int64).data<long>().ToArray();
        var merge = Vision.Spec.MergeSize;
        var flat = new long[3 * b * t];
        var next = 0;
        for (var r = 0; r < b; r++)
        {
            var start = 0;
            while (start < t)
            {
                var end = start + 1;
                while (end < t && hostPos[r * t + end] != 0) end++;
                var len = end - start;
                var segment = new long[1, len];
                var placeholders = 0;
                for (var j = 0; j < len; j++)
                {
                    segment[0, j] = hostIds[r * t + start + j];
                    if (segment[0, j] == Vision.ImageTokenId) placeholders++;
                }
                // This segment's images: the next ones whose token counts add up to its placeholders.
                var grids = new List<(int T, int H, int W)>();
                while (placeholders > 0 && next < images.Count)
                {
                    var im = images[next++] as ImagePatches ?? throw new OspreyException("the images were not processed for this model; use the model folder's image processor.");
                    grids.Add((im.GridT, im.GridH, im.GridW));
                    placeholders -= im.TokenCount(merge);
                }
                if (placeholders != 0)
                    throw new OspreyException($"packed row {r}: a sample's image placeholder tokens do not match its images' grids (t*h*w/{merge * merge} tokens each); re-encode the dataset.");
                var (pos, _) = MropeIndex.Compute(segment, null, grids, Vision.ImageTokenId, merge);
                for (var a = 0; a < 3; a++)
                    for (var j = 0; j < len; j++) flat[(a * b + r) * t + start + j] = pos[a, 0, j];
                start = end;
            }
        }
        if (next != images.Count)
            throw new OspreyException($"the packed rows have placeholders for {next} image(s) but {images.Count} were given.");
        return tensor(flat, [3, b, t], dtype: ScalarType.Int64, device: Device);
    }

    /// <summary>
    /// Qwen2-VL: M-RoPE positions [3, B, T] of ids [B, T] (right padding continues as text) and each row's decode delta.
    /// LLaVA: no positions (null: the ordinary ones) and zero deltas.
    /// </summary>
    (Tensor? Positions, long[] Deltas) ImagePositions(Tensor ids, IReadOnlyList<ProcessedImage> images)
    {
        long b = ids.shape[0], t = ids.shape[1];
        if (Vision is null) return (null, new long[b]);
        var host = ids.to(CPU).to_type(ScalarType.Int64).data<long>().ToArray();
        var grid = new long[b, t];
        for (var i = 0; i < host.Length; i++) grid[i / t, i % t] = host[i];
        var patches = images.Cast<ImagePatches>().ToList();
        var (pos, deltas) = MropeIndex.Compute(grid, null, patches.Select(i => (i.GridT, i.GridH, i.GridW)).ToList(), Vision.ImageTokenId, Vision.Spec.MergeSize);
        var flat = new long[3 * b * t];
        Buffer.BlockCopy(pos, 0, flat, 0, flat.Length * sizeof(long));
        return (tensor(flat, [3, b, t], dtype: ScalarType.Int64, device: Device), deltas);
    }
}
