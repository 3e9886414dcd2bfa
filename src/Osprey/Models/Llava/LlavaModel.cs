using System.Text.Json;
using Osprey.Images;
using Osprey.Io;
using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models.Llava;

/// <summary>
/// LLaVA (LlavaForConditionalGeneration) and LLaVA-NeXT (LlavaNextForConditionalGeneration): "vision_tower" (CLIP or
/// SigLIP), "multi_modal_projector", the language model ("language_model", any supported text family) and "lm_head";
/// LLaVA-NeXT adds "image_newline". Loads transformers 5's in-memory layout ("model.vision_tower.", "model.language_model.",
/// "lm_head."), what transformers 5.17 saves ("vision_tower.embeddings.", "language_model.model.",
/// "language_model.lm_head.", "image_newline") and the hub checkpoints' ("vision_tower.vision_model.", ...).
/// Each image placeholder token (image_token_index) is replaced by the next image feature row; positions are the
/// language model's ordinary ones.
/// </summary>
public sealed class LlavaModel : nn.Module
{
#pragma warning disable IDE0044
    VisionEncoder vision_tower;
    MultiModalProjector multi_modal_projector;
    DecoderModel language_model;
    LinearLayer? lm_head;
    Parameter? image_newline;
#pragma warning restore IDE0044
    readonly LlavaSpec _llava;

    /// <summary>The language model's shape.</summary>
    public DecoderSpec Spec { get; }
    /// <summary>The placeholder token each image feature row stands in for.</summary>
    public int ImageTokenId => _llava.ImageTokenId;
    /// <summary>Whether this is LLaVA-NeXT (anyres tiles, image_newline).</summary>
    public bool IsNext => _llava.Next;
    /// <summary>Where the weights live.</summary>
    public Device Device { get; }
    /// <summary>The weights' dtype.</summary>
    public ScalarType DType { get; }

    LlavaModel(DecoderSpec spec, LlavaSpec llava, ScalarType dtype, Device device) : base("LlavaModel")
    {
        Spec = spec;
        _llava = llava;
        Device = device;
        DType = dtype;
        vision_tower = new VisionEncoder(llava.Vision, dtype, device);
        multi_modal_projector = new MultiModalProjector((long)llava.Vision.Hidden * llava.FeatureLayers.Count, spec.HiddenSize,
            llava.ProjectorBias, llava.ProjectorActivation, dtype, device);
        language_model = new DecoderModel(spec, dtype, device);
        if (!spec.TieWordEmbeddings) lm_head = new LinearLayer(spec.HiddenSize, spec.VocabSize, false, dtype, device);
        if (llava.Next) image_newline = new Parameter(empty(spec.HiddenSize, dtype: dtype, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>Whether <paramref name="directory"/>'s config.json is a llava or llava_next model.</summary>
    public static bool IsLlava(string directory)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            return LlavaFamily.Is(doc);
        }
        catch (JsonException) { return false; }
    }

    static (DecoderSpec, LlavaSpec) ReadConfig(string directory)
    {
        var file = Path.Combine(directory, "config.json");
        if (!File.Exists(file)) throw new OspreyException($"{directory} has no config.json; point --model at a Hugging Face model folder.");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(file)); }
        catch (JsonException e) { throw new OspreyException($"{file} is not valid JSON (line {e.LineNumber + 1}): {e.Message}; fix or re-download it.", e); }
        using (doc)
        {
            if (!LlavaFamily.Is(doc)) throw new OspreyException($"{file}: model_type is not llava or llava_next.");
            return (LlavaFamily.ReadText(doc, file), LlavaFamily.ReadVision(doc, file));
        }
    }

    /// <summary>The image processor the model folder describes: LLaVA-NeXT's anyres tiler or the single-crop
    /// CLIP/SigLIP one (preprocessor_config.json, else processor_config.json; config.json's pinpoints as fallback).</summary>
    public static Func<RgbImage, ImageTiles> ImageProcessor(string directory)
    {
        var (_, llava) = ReadConfig(directory);
        if (llava.Next) return LlavaNextImageProcessor.FromFolder(directory, llava.Pinpoints).Process;
        return ClipImageProcessor.FromFolder(directory).Process;
    }

    /// <summary>Loads a model folder strictly (every tensor present, none extra, shapes equal).</summary>
    public static LlavaModel Load(string directory, Device device, ScalarType dtype)
    {
        var (spec, llava) = ReadConfig(directory);
        var m = new LlavaModel(spec, llava, dtype, device);
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

    /// <summary>
    /// The module path a checkpoint name loads into (null: a tensor LLaVA has but never uses): the name
    /// <see cref="LlavaNames.ToModel"/> gives the CausalLM, with the language model under this class's "language_model.".
    /// </summary>
    static string? Canonical(string name) =>
        LlavaNames.ToModel(name) is not { } n ? null : n.StartsWith("model.", StringComparison.Ordinal) ? "language_model." + n["model.".Length..] : n;

    void LoadWeights(SafetensorsCheckpoint checkpoint)
    {
        var expected = state_dict();
        var file = string.Join(", ", checkpoint.Files.Select(Path.GetFileName));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var name in checkpoint.Names)
        {
            var key = Canonical(name);
            if (key is null) continue;
            if (Spec.TieWordEmbeddings && key == "lm_head.weight") continue;
            if (!expected.TryGetValue(key, out var target))
                throw new OspreyException($"{file} holds tensor '{name}', which a {(IsNext ? "llava_next" : "llava")} model with this config.json does not have; the checkpoint and config do not match.");
            var entry = checkpoint.Entry(name);
            if (!entry.Shape.SequenceEqual(target.shape))
                throw new OspreyException($"{file}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}] but the config implies [{string.Join(", ", target.shape)}]; the checkpoint and config.json do not match.");
            using var source = checkpoint.ReadTensor(name);
            target.copy_(source);
            seen.Add(key);
        }
        var missing = expected.Keys.FirstOrDefault(k => !seen.Contains(k));
        if (missing is not null)
            throw new OspreyException($"{file} lacks tensor '{missing}' that this {(IsNext ? "llava_next" : "llava")} config needs; the checkpoint is incomplete or does not match config.json.");
    }

    /// <summary>The language-model tokens <paramref name="image"/> takes (its feature rows).</summary>
    public int TokenCount(ImageTiles image) => LlavaImages.TokenCount(_llava, image);

    /// <summary>The projected image features [rows, hidden] of <paramref name="images"/>, image after image (LLaVA-NeXT:
    /// base image, then the unpadded tile grid with image_newline closing each row).</summary>
    public Tensor ImageFeatures(IReadOnlyList<ImageTiles> images) =>
        LlavaImages.Features(_llava, vision_tower, multi_modal_projector, image_newline, images, Device, DType);

    /// <summary>Input embeddings with every image placeholder row replaced by the next image feature row.</summary>
    public Tensor Embed(Tensor ids, IReadOnlyList<ImageTiles> images)
    {
        var h = language_model.Embed(ids);
        if (images.Count == 0) return h;
        using var scope = NewDisposeScope();
        var features = ImageFeatures(images).to_type(h.dtype);
        var where = ids.reshape(-1).eq(ImageTokenId).nonzero().squeeze(-1);
        if (where.shape[0] != features.shape[0])
            throw new OspreyException($"the prompt has {where.shape[0]} image placeholder tokens but the images give {features.shape[0]} features; each image needs exactly its feature count of image tokens.");
        var outp = h.reshape(-1, h.shape[^1]).index_copy(0, where, features).view(h.shape);
        h.Dispose();
        return outp.MoveToOuterDisposeScope();
    }

    Tensor Head(Tensor h) => lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, language_model.EmbedTokens.Weight);

    /// <summary>Logits [B, T, vocab] for ids [B, T] with <paramref name="images"/> (in placeholder order);
    /// <paramref name="keyValid"/> [B, T] marks real tokens (left padding 0).</summary>
    public Tensor Forward(Tensor ids, IReadOnlyList<ImageTiles> images, Tensor? keyValid = null)
    {
        using var scope = NewDisposeScope();
        var h = language_model.ForwardEmbeds(Embed(ids, images), null, keyValid, null);
        return Head(h).MoveToOuterDisposeScope();
    }

    /// <summary>Greedy decoding of one prompt: up to <paramref name="maxNewTokens"/> new ids, stopping after an
    /// end-of-sequence id from config.json or <paramref name="stopIds"/>.</summary>
    public IReadOnlyList<int> GenerateGreedy(IReadOnlyList<int> prompt, IReadOnlyList<ImageTiles> images, int maxNewTokens, IReadOnlyCollection<int>? stopIds = null)
        => Generate(prompt, images, maxNewTokens, stopIds, null);

    /// <summary>Decoding of one prompt as <see cref="GenerateGreedy"/>, with <paramref name="pick"/> choosing each next
    /// id from the step's float32 logits [1, vocab] (the sampler of <c>osprey infer</c>); null picks the argmax.</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> prompt, IReadOnlyList<ImageTiles> images, int maxNewTokens, IReadOnlyCollection<int>? stopIds, Func<Tensor, int>? pick)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Count], dtype: ScalarType.Int64, device: Device);
        var cache = new KvCache(Spec, 1, prompt.Count + maxNewTokens, DType, Device);
        var stops = new HashSet<int>(Spec.EosTokenIds);
        if (stopIds is not null) stops.UnionWith(stopIds);
        var h = language_model.ForwardEmbeds(Embed(ids, images), null, null, cache);
        var outIds = new List<int>();
        for (var step = 0; step < maxNewTokens; step++)
        {
            var logits = Head(h.narrow(1, h.shape[1] - 1, 1));
            var next = pick is null ? (int)logits.argmax(-1).item<long>() : pick(logits.reshape(1, -1).to_type(ScalarType.Float32));
            outIds.Add(next);
            if (stops.Contains(next) || step == maxNewTokens - 1) break;
            var nextIds = tensor(new long[] { next }, [1, 1], dtype: ScalarType.Int64, device: Device);
            h = language_model.Forward(nextIds, null, null, cache);
        }
        return outIds;
    }
}
