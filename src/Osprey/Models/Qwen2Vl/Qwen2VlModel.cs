using System.Text.Json;
using Osprey.Images;
using Osprey.Io;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models.Qwen2Vl;

/// <summary>
/// Qwen2-VL / Qwen2.5-VL (Qwen2VLForConditionalGeneration): the vision tower ("visual"), the Qwen2 language model
/// ("model") and "lm_head", named as the hub checkpoints name them; transformers 5's layout ("model.visual.",
/// "model.language_model.") loads too. Image placeholder tokens (image_token_id) are replaced by the tower's
/// features in order, and positions are M-RoPE's three rows (see <see cref="MropeIndex"/>).
/// </summary>
public sealed class Qwen2VlModel : nn.Module
{
#pragma warning disable IDE0044
    VisionTower visual;
    DecoderModel model;
    LinearLayer? lm_head;
#pragma warning restore IDE0044

    /// <summary>The language model's shape.</summary>
    public DecoderSpec Spec { get; }
    /// <summary>The placeholder token each image token stands in for.</summary>
    public int ImageTokenId { get; }
    /// <summary>&lt;|vision_start|&gt;.</summary>
    public int VisionStartTokenId { get; }
    /// <summary>&lt;|vision_end|&gt;.</summary>
    public int VisionEndTokenId { get; }
    /// <summary>Patches merged per side into one token.</summary>
    public int MergeSize => visual.Spec.MergeSize;
    /// <summary>Where the weights live.</summary>
    public Device Device { get; }
    /// <summary>The weights' dtype.</summary>
    public ScalarType DType { get; }

    Qwen2VlModel(DecoderSpec spec, VisionSpec vision, (int Image, int Start, int End) ids, ScalarType dtype, Device device) : base("Qwen2VlModel")
    {
        Spec = spec;
        (ImageTokenId, VisionStartTokenId, VisionEndTokenId) = ids;
        Device = device;
        DType = dtype;
        visual = new VisionTower(vision, dtype, device);
        model = new DecoderModel(spec, dtype, device);
        if (!spec.TieWordEmbeddings) lm_head = new LinearLayer(spec.HiddenSize, spec.VocabSize, false, dtype, device);
        RegisterComponents();
    }

    /// <summary>Whether <paramref name="directory"/>'s config.json is a Qwen2-VL or Qwen2.5-VL model.</summary>
    public static bool IsVisionLanguage(string directory)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            return Qwen2VlFamily.Is(doc);
        }
        catch (JsonException) { return false; }
    }

    /// <summary>The model <paramref name="directory"/>'s config.json describes, with uninitialised weights.</summary>
    internal static Qwen2VlModel Create(string directory, Device device, ScalarType dtype)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) throw new OspreyException($"{directory} has no config.json; point --model at a Hugging Face model folder.");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
        if (!Qwen2VlFamily.Is(doc)) throw new OspreyException($"{file}: model_type is not qwen2_vl or qwen2_5_vl.");
        var spec = new Qwen2VlFamily().ReadSpec(doc, file);
        var (vision, image, start, end) = Qwen2VlFamily.ReadVision(doc, spec, file);
        return new Qwen2VlModel(spec, vision, (image, start, end), dtype, device);
    }

    /// <summary>Loads a model folder strictly (every tensor present, none extra, shapes equal).</summary>
    public static Qwen2VlModel Load(string directory, Device device, ScalarType dtype)
    {
        var m = Create(directory, device, dtype);
        try
        {
            using var checkpoint = SafetensorsCheckpoint.Open(directory);
            m.LoadWeights(checkpoint);
        }
        catch
        {
            m.Dispose();
            throw;
        }
        return m;
    }

    /// <summary>transformers 5 nests the two parts under "model."; the hub checkpoints do not.</summary>
    internal static string Canonical(string name) =>
        name.StartsWith("model.visual.", StringComparison.Ordinal) ? name["model.".Length..]
        : name.StartsWith("model.language_model.", StringComparison.Ordinal) ? "model." + name["model.language_model.".Length..]
        : name;

    void LoadWeights(SafetensorsCheckpoint checkpoint)
    {
        var expected = state_dict();
        var file = string.Join(", ", checkpoint.Files.Select(Path.GetFileName));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var name in checkpoint.Names)
        {
            var key = Canonical(name);
            if (Spec.TieWordEmbeddings && key == "lm_head.weight") continue;
            if (!expected.TryGetValue(key, out var target))
                throw new OspreyException($"{file} holds tensor '{name}', which a {Spec.ModelType} model with this config.json does not have; the checkpoint and config do not match.");
            var entry = checkpoint.Entry(name);
            if (!entry.Shape.SequenceEqual(target.shape))
                throw new OspreyException($"{file}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}] but the config implies [{string.Join(", ", target.shape)}]; the checkpoint and config.json do not match.");
            using var source = checkpoint.ReadTensor(name);
            target.copy_(source);
            seen.Add(key);
        }
        var missing = expected.Keys.FirstOrDefault(k => !seen.Contains(k));
        if (missing is not null)
            throw new OspreyException($"{file} lacks tensor '{missing}' that this {Spec.ModelType} config needs; the checkpoint is incomplete or does not match config.json.");
    }

    /// <summary>The vision tower's features [tokens, hidden] for <paramref name="images"/>, in order.</summary>
    public Tensor ImageFeatures(IReadOnlyList<ImagePatches> images) => visual.Encode(images, Device, DType);

    /// <summary>M-RoPE positions [3, B, T] and per-row decode deltas for ids [B, T] and the images in order.</summary>
    public (Tensor Positions, long[] Deltas) Positions(Tensor ids, IReadOnlyList<ImagePatches> images, Tensor? keyValid = null)
    {
        long b = ids.shape[0], t = ids.shape[1];
        var flat = ids.to(CPU).to_type(ScalarType.Int64).data<long>().ToArray();
        var grid = new long[b, t];
        for (var i = 0; i < flat.Length; i++) grid[i / t, i % t] = flat[i];
        bool[,]? valid = null;
        if (keyValid is not null)
        {
            var kv = keyValid.to(CPU).to_type(ScalarType.Bool).data<bool>().ToArray();
            var kt = keyValid.shape[1];
            valid = new bool[b, t];
            for (var r = 0; r < b; r++)
                for (var j = 0; j < t; j++) valid[r, j] = kv[r * kt + kt - t + j];
        }
        var (pos, deltas) = MropeIndex.Compute(grid, valid, images.Select(i => (i.GridT, i.GridH, i.GridW)).ToList(), ImageTokenId, MergeSize);
        var data = new long[3 * b * t];
        Buffer.BlockCopy(pos, 0, data, 0, data.Length * sizeof(long));
        return (tensor(data, [3, b, t], dtype: ScalarType.Int64, device: Device), deltas);
    }

    /// <summary>Input embeddings with every image placeholder row replaced by the next image feature row.</summary>
    public Tensor Embed(Tensor ids, IReadOnlyList<ImagePatches> images)
    {
        var h = model.Embed(ids);
        if (images.Count == 0) return h;
        using var scope = NewDisposeScope();
        var features = ImageFeatures(images).to_type(h.dtype);
        var flatIds = ids.reshape(-1);
        var where = flatIds.eq(ImageTokenId).nonzero().squeeze(-1);
        if (where.shape[0] != features.shape[0])
            throw new OspreyException($"the prompt has {where.shape[0]} image placeholder tokens but the images give {features.shape[0]} features; each image needs exactly its grid's tokens (t*h*w/{MergeSize * MergeSize}).");
        var outp = h.reshape(-1, h.shape[^1]).index_copy(0, where, features).view(h.shape);
        h.Dispose();
        return outp.MoveToOuterDisposeScope();
    }

    /// <summary>Logits [B, T, vocab] for ids [B, T] with <paramref name="images"/> (in placeholder order);
    /// <paramref name="keyValid"/> [B, T] marks real tokens (left padding 0).</summary>
    public Tensor Forward(Tensor ids, IReadOnlyList<ImagePatches> images, Tensor? keyValid = null)
    {
        using var scope = NewDisposeScope();
        var (positions, _) = Positions(ids, images, keyValid);
        var h = model.ForwardEmbeds(Embed(ids, images), positions, keyValid, null);
        return Head(h).MoveToOuterDisposeScope();
    }

    Tensor Head(Tensor h) => lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, model.EmbedTokens.Weight);

    /// <summary>Greedy decoding of one prompt: up to <paramref name="maxNewTokens"/> new ids, stopping after an
    /// end-of-sequence id from config.json or <paramref name="stopIds"/>.</summary>
    public IReadOnlyList<int> GenerateGreedy(IReadOnlyList<int> prompt, IReadOnlyList<ImagePatches> images, int maxNewTokens, IReadOnlyCollection<int>? stopIds = null)
        => Generate(prompt, images, maxNewTokens, stopIds, null);

    /// <summary>Decoding of one prompt as <see cref="GenerateGreedy"/>, with <paramref name="pick"/> choosing each next
    /// id from the step's float32 logits [1, vocab] (the sampler of <c>osprey infer</c>); null picks the argmax.</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> prompt, IReadOnlyList<ImagePatches> images, int maxNewTokens, IReadOnlyCollection<int>? stopIds, Func<Tensor, int>? pick)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Count], dtype: ScalarType.Int64, device: Device);
        var (positions, deltas) = Positions(ids, images);
        var cache = new KvCache(Spec, 1, prompt.Count + maxNewTokens, DType, Device);
        var stops = new HashSet<int>(Spec.EosTokenIds);
        if (stopIds is not null) stops.UnionWith(stopIds);
        var h = model.ForwardEmbeds(Embed(ids, images), positions, null, cache);
        var outIds = new List<int>();
        for (var step = 0; step < maxNewTokens; step++)
        {
            var logits = Head(h.narrow(1, h.shape[1] - 1, 1));
            var next = pick is null ? (int)logits.argmax(-1).item<long>() : pick(logits.reshape(1, -1).to_type(ScalarType.Float32));
            outIds.Add(next);
            if (stops.Contains(next) || step == maxNewTokens - 1) break;
            var p = cache.Length + deltas[0];
            var pos = full([3, 1, 1], p, dtype: ScalarType.Int64, device: Device);
            var nextIds = tensor(new long[] { next }, [1, 1], dtype: ScalarType.Int64, device: Device);
            h = model.ForwardEmbeds(model.Embed(nextIds), pos, null, cache);
        }
        return outIds;
    }
}
