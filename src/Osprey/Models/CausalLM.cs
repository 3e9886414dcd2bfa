using Osprey.Io;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// A decoder-only language model loaded from a Hugging Face folder. Its state-dict keys are the Hugging
/// Face keys (model.layers.0.self_attn.q_proj.weight, lm_head.weight, ...), so checkpoints load and save
/// without a translation table.
/// </summary>
public sealed partial class CausalLM : nn.Module
{
#pragma warning disable IDE0044
    DecoderModel model;
    LinearLayer? lm_head;
    Qwen2Vl.VisionTower? visual; // a vision-language model's image encoder (CausalLM.Vision.cs); null for text models
    // A LLaVA's image side (CausalLM.Vision.cs), under transformers' names; null otherwise.
    Llava.VisionEncoder? vision_tower;
    Llava.MultiModalProjector? multi_modal_projector;
    TorchSharp.Modules.Parameter? image_newline;
#pragma warning restore IDE0044

    /// <summary>What the model is.</summary>
    public DecoderSpec Spec { get; }

    /// <summary>The device its weights live on.</summary>
    public Device Device { get; }

    /// <summary>The dtype of its weights.</summary>
    public ScalarType DType { get; }

    /// <summary>Creates the uninitialised model for <paramref name="spec"/> (weights come from <see cref="LoadWeights"/>).</summary>
    public CausalLM(DecoderSpec spec, ScalarType dtype, Device device) : this(spec, dtype, device, false, null, null) { }

    /// <summary>
    /// The model with, when <paramref name="deferProjections"/>, decoder projection weights that hold no storage (see
    /// <see cref="LinearLayer.Materialize"/>): they are about to get quantized bases, so the dense model never exists on
    /// <paramref name="device"/> (a 7B model would otherwise reserve its full bf16 size in the CUDA caching allocator
    /// before any layer is quantized).
    /// </summary>
    CausalLM(DecoderSpec spec, ScalarType dtype, Device device, bool deferProjections, Qwen2Vl.VisionParts? vision, Llava.LlavaSpec? llava) : base("CausalLM")
    {
        Spec = spec;
        Device = device;
        DType = dtype;
        model = new DecoderModel(spec, dtype, device, deferProjections);
        if (!spec.TieWordEmbeddings) lm_head = new LinearLayer(spec.HiddenSize, spec.VocabSize, false, dtype, device);
        if (vision is not null)
        {
            Vision = vision;
            visual = new Qwen2Vl.VisionTower(vision.Spec, dtype, device);
        }
        if (llava is not null)
        {
            _llava = llava;
            vision_tower = new Llava.VisionEncoder(llava.Vision, dtype, device);
            multi_modal_projector = new Llava.MultiModalProjector((long)llava.Vision.Hidden * llava.FeatureLayers.Count, spec.HiddenSize,
                llava.ProjectorBias, llava.ProjectorActivation, dtype, device);
            if (llava.Next) image_newline = new TorchSharp.Modules.Parameter(empty(spec.HiddenSize, dtype: dtype, device: device), requires_grad: false);
        }
        RegisterComponents();
        // TorchSharp's own modules in the tower (patch conv, norms) start with requires_grad; like every base weight here
        // they start frozen, so a frozen tower records no autograd graph and training unfreezes only what it trains.
        if (visual is not null)
            foreach (var p in visual.parameters()) p.requires_grad_(false);
        foreach (var m in new nn.Module?[] { vision_tower, multi_modal_projector })
            if (m is not null)
                foreach (var p in m.parameters()) p.requires_grad_(false);
    }

    /// <summary>
    /// Loads a model folder (config.json + safetensors) onto <paramref name="device"/> in
    /// <paramref name="dtype"/>, one tensor at a time. Loading is strict: a missing, unexpected or
    /// mis-shaped tensor is an error naming it. Call <see cref="TorchRuntime.Initialize"/> first (the
    /// <see cref="ModelLoadOptions"/> overload does): the first use of TorchSharp otherwise loads its own
    /// CPU libtorch, which a GPU-only build lacks.
    /// </summary>
    public static CausalLM Load(string directory, Device device, ScalarType dtype) => Load(directory, device, dtype, null);

    /// <summary>
    /// <see cref="Load(string, Device, ScalarType)"/> where the linear layers <paramref name="quantized"/> chooses get a
    /// quantized base (<see cref="LinearLayer.UseBase"/>) read or quantized one tensor at a time.
    /// </summary>
    internal static CausalLM Load(string directory, Device device, ScalarType dtype, IQuantizedFolder? quantized)
    {
        var spec = ModelRegistry.ReadSpec(directory);
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        EnsureConfigFitsWeights(spec, checkpoint, directory);
        var lm = new CausalLM(spec, dtype, device, quantized is not null, Qwen2Vl.VisionParts.Read(directory, spec), Llava.LlavaFamily.ReadVision(directory)) { SourceDirectory = Path.GetFullPath(directory) };
        try
        {
            // A *ForSequenceClassification folder (score.weight, no lm_head): a reward model, see CausalLM.Score.cs.
            if (ScoreLabels(directory, checkpoint) is int labels) lm.AddScoreHead(new ScoreHead(spec.HiddenSize, labels, dtype, device, trainable: false));
            if (quantized is not null) lm.LoadQuantizedBases(quantized, checkpoint);
            lm.LoadWeights(checkpoint);
        }
        catch
        {
            lm.Dispose();
            throw;
        }
        return lm;
    }

    /// <summary>
    /// Refuses a config.json that describes a model far larger than its safetensors before any tensor is allocated: a
    /// mistyped hidden_size or vocab_size would otherwise ask libtorch for terabytes and end in a native backtrace.
    /// The embedding's shape names the field; otherwise the parameter count the config implies (a lower bound: the
    /// projections and the embedding) is compared with the values the files hold.
    /// </summary>
    static void EnsureConfigFitsWeights(DecoderSpec spec, SafetensorsCheckpoint checkpoint, string directory)
    {
        var file = Path.Combine(directory, "config.json");
        var embedding = checkpoint.Names.FirstOrDefault(n => n.EndsWith("embed_tokens.weight", StringComparison.Ordinal));
        if (embedding is not null && checkpoint.Entry(embedding).Shape is [var rows, var width])
        {
            if (width != spec.HiddenSize)
                throw new OspreyException($"{file}: field 'hidden_size' is {spec.HiddenSize} but {embedding} in the safetensors is [{rows}, {width}]; fix the config or re-download the model.");
            if (rows < spec.VocabSize / 2)
                throw new OspreyException($"{file}: field 'vocab_size' is {spec.VocabSize} but {embedding} in the safetensors is [{rows}, {width}]; fix the config or re-download the model.");
        }
        long h = spec.HiddenSize, heads = spec.NumHeads, kv = spec.NumKvHeads, d = spec.HeadDim;
        var perLayer = h * d * (2 * heads + 2 * kv) + 3 * h * spec.IntermediateSize;
        var implied = spec.VocabSize * h * (spec.TieWordEmbeddings ? 1 : 2) + perLayer * spec.Layers.Count;
        long stored = 0;
        foreach (var name in checkpoint.Names)
        {
            var entry = checkpoint.Entry(name);
            // Packed low-bit weights: a GPTQ/AWQ int32 holds 8 four-bit codes (16 two-bit), a bitsandbytes uint8 two.
            var per = entry.DType switch { "I32" => 8, "U8" => 2, _ => 1 };
            stored += entry.Shape.Aggregate(1L, (a, b) => a * b) * per;
        }
        // Twice the stored count plus a margin: families differ in what the estimate leaves out, never by this much.
        if (implied > 2 * stored + (1L << 20))
            throw new OspreyException($"{file} describes about {implied:N0} parameters but the safetensors hold {stored:N0} values; check hidden_size, intermediate_size, num_attention_heads, head_dim and num_hidden_layers, or re-download the model.");
    }

    /// <summary>Loads a model folder with <c>--device</c>/<c>--torch_dtype</c> style choices.</summary>
    public static CausalLM Load(string directory, ModelLoadOptions options)
    {
        var runtime = TorchRuntime.Initialize(options.Device, options.Notice);
        var spec = ModelRegistry.ReadSpec(directory);
        var dtype = DTypes.Resolve(options.DType, spec.SavedDType, runtime.Device);
        if (options.TensorParallel is { } tp) return LoadShard(directory, tp, dtype, options);
        var quantized = options.Quantization?.Open(directory, dtype, runtime.Device);
        var model = Load(directory, runtime.Device, dtype, quantized);
        if (quantized is not null) (options.Notice ?? Console.Error).WriteLine(quantized.Describe(model.QuantizedLayerCount));
        return model;
    }

    /// <summary>How the model's quantized layers were loaded (null: the model is dense).</summary>
    internal IQuantizedFolder? Quantization { get; private set; }

    /// <summary>The number of linear layers holding a quantized base.</summary>
    public int QuantizedLayerCount => LinearLayers().Count(l => l.Layer.Base is not null);

    /// <summary>Gives every linear layer <paramref name="quantized"/> picks its quantized base, before the dense tensors load.</summary>
    void LoadQuantizedBases(IQuantizedFolder quantized, SafetensorsCheckpoint checkpoint)
    {
        Quantization = quantized;
        foreach (var (path, layer) in LinearLayers().ToList())
            if (quantized.Load(path, checkpoint) is { } q) layer.UseBase(q);
            else layer.Materialize(); // a layer left dense gets its storage now, before the dense tensors load
    }

    /// <summary>
    /// Turns every quantized base back into a dense weight in the model's dtype (merging adapters into a quantized
    /// model writes a dense folder, as ms-swift does); returns how many layers were dequantized.
    /// </summary>
    public int Dequantize()
    {
        var n = 0;
        foreach (var (_, layer) in LinearLayers())
        {
            if (layer.Base is null) continue;
            layer.Densify();
            n++;
        }
        Quantization = null;
        return n;
    }

    /// <summary>The folder the model was loaded from, if any (its config.json is the template when saving).</summary>
    public string? SourceDirectory { get; private init; }

    /// <summary>
    /// Saves the model as a Hugging Face folder: config.json (dtype updated), generation_config.json when the
    /// source had one, and the weights in the model's dtype as model.safetensors or, past
    /// <paramref name="maxShardBytes"/>, numbered shards with model.safetensors.index.json. A tied lm_head is
    /// not written, as transformers does. Every file is written to a temporary name and renamed. A cancelled
    /// <paramref name="cancellationToken"/> stops between tensors with <see cref="OperationCanceledException"/>, before
    /// any file gets its final name.
    /// </summary>
    public IReadOnlyList<string> Save(string directory, long maxShardBytes, CancellationToken cancellationToken = default)
    {
        if (SourceDirectory is null) throw new InvalidOperationException("Save needs a model loaded from a folder (its config.json is copied).");
        if (Shard is not null) throw new InvalidOperationException("this is one tensor-parallel rank's shard; save the model loaded whole.");
        Directory.CreateDirectory(directory);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(SourceDirectory, "config.json")))!.AsObject();
        var dtypeName = DTypes.Name(DType);
        config["dtype"] = dtypeName;
        if (config.ContainsKey("torch_dtype")) config["torch_dtype"] = dtypeName;
        if (IsRewardModel) ApplyRewardConfig(config);
        if (Quantization is not null && QuantizedLayerCount > 0) config["quantization_config"] = Quantization.Config.DeepClone();
        else config.Remove("quantization_config");
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (path, layer) in LinearLayers())
            if (layer.Base is { } q)
                foreach (var (name, _) in q.CheckpointTensors())
                    if (q.StoredDType(name) is { } dtype) stored[path + "." + name] = dtype;
        var tensors = CheckpointTensors();
        // A LLaVA's tensors go back under the names its checkpoint used (the language model sits at "model." here).
        if (_llava is not null)
        {
            string Saved(string name) => _storedNames.GetValueOrDefault(name) ?? Llava.LlavaNames.ToCheckpoint(name);
            tensors = tensors.ToDictionary(kv => Saved(kv.Key), kv => kv.Value);
            stored = stored.ToDictionary(kv => Saved(kv.Key), kv => kv.Value);
        }
        var written = new List<string>(SafetensorsWriter.WriteSharded(directory, tensors, maxShardBytes, cancellationToken: cancellationToken, storedDTypes: stored));
        WriteAtomically(Path.Combine(directory, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add("config.json");
        var generation = Path.Combine(SourceDirectory, "generation_config.json");
        var target = Path.Combine(directory, "generation_config.json");
        if (File.Exists(generation) && Path.GetFullPath(generation) != Path.GetFullPath(target))
        {
            WriteAtomically(target, File.ReadAllText(generation));
            written.Add("generation_config.json");
        }
        return written;
    }

    static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// The tensors a checkpoint must hold: every state-dict key except a tied lm_head and attached adapters' tensors; a
    /// layer with a quantized base contributes that base's tensors (bitsandbytes' serialization) instead of its weight.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> CheckpointTensors()
    {
        var d = DenseCheckpointTensors();
        foreach (var (path, layer) in LinearLayers())
            if (layer.Base is { } q)
                foreach (var (name, t) in q.CheckpointTensors()) d[path + "." + name] = t;
        return d;
    }

    /// <summary>The state-dict tensors loaded from a checkpoint as they are: no adapters, no weights replaced by a quantized base.</summary>
    Dictionary<string, Tensor> DenseCheckpointTensors()
    {
        var d = new Dictionary<string, Tensor>();
        var skip = AdapterKeys();
        foreach (var (path, layer) in LinearLayers())
            if (layer.Base is not null) skip.Add(path + ".weight");
        foreach (var (name, t) in state_dict())
            if (!skip.Contains(name)) d[name] = t;
        return d;
    }

    /// <summary>Copies every tensor of <paramref name="checkpoint"/> into the model (strictly).</summary>
    public void LoadWeights(SafetensorsCheckpoint checkpoint)
    {
        var expected = DenseCheckpointTensors();
        var based = LinearLayers().Where(l => l.Layer.Base is not null).Select(l => l.Path + ".weight").ToHashSet(StringComparer.Ordinal);
        var file = string.Join(", ", checkpoint.Files.Select(Path.GetFileName));
        // A vision-language checkpoint in transformers 5's layout nests its parts ("model.language_model.",
        // "model.visual."); each tensor is looked up by the name the hub layout (and this model) gives it.
        // A LLaVA's names are mapped the same way (Llava.LlavaNames); tensors it never uses are skipped.
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var n in checkpoint.Names)
        {
            var canonical = _llava is not null ? Llava.LlavaNames.ToModel(n) : visual is null ? n : Qwen2Vl.Qwen2VlModel.Canonical(n);
            if (canonical is not null) stored[canonical] = n;
            else if (_llava is not null && Llava.LlavaNames.UnusedLinear(n, checkpoint.Entry(n).Shape) is { } unused && !_unusedLinear.Contains(unused)) _unusedLinear.Add(unused);
        }
        if (_llava is not null)
            foreach (var (name, storedName) in stored) _storedNames[name] = storedName;
        foreach (var (name, storedName) in stored)
        {
            if (expected.ContainsKey(name) || based.Contains(name) || Quantization?.IsCompanion(storedName) == true) continue;
            // transformers drops a tied lm_head when saving, but older exports keep it: accept that copy.
            if (Spec.TieWordEmbeddings && name == "lm_head.weight") continue;
            throw new OspreyException($"{file} holds tensor '{storedName}', which a {Spec.ModelType} model with this config.json does not have; the checkpoint and config do not match.");
        }
        foreach (var (name, target) in expected)
        {
            if (!stored.ContainsKey(name))
                throw new OspreyException($"{file} lacks tensor '{name}' that this {Spec.ModelType} config needs; the checkpoint is incomplete or does not match config.json.");
            var entry = checkpoint.Entry(stored[name]);
            // A tensor-parallel rank holds its slice of the projections (CausalLM.TensorParallel.cs).
            var wanted = Shard is { } shard && shard.SliceOf(name, FullSpec) is { } slice ? slice.ShapeOf(entry.Shape) : entry.Shape;
            if (!wanted.SequenceEqual(target.shape))
                throw new OspreyException($"{file}: tensor '{stored[name]}' has shape [{string.Join(", ", entry.Shape)}] but the config implies [{string.Join(", ", target.shape)}]; the checkpoint and config.json do not match.");
        }
        using var _ = no_grad();
        foreach (var (name, target) in expected)
        {
            using var source = checkpoint.ReadTensor(stored[name]);
            if (Shard is { } shard && shard.SliceOf(name, FullSpec) is { } slice)
            {
                using var part = slice.Take(source, shard.Rank);
                target.copy_(part);
                continue;
            }
            target.copy_(source);
        }
    }

    /// <summary>
    /// Logits [B, T, vocab] for ids [B, T]. <paramref name="keyValid"/> [B, cache length + T] marks real
    /// tokens (left padding = 0); <paramref name="positions"/> defaults to 0..T-1 after the cache;
    /// <paramref name="lastOnly"/> computes logits for the last position only ([B, 1, vocab]).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? keyValid = null, Tensor? positions = null, KvCache? cache = null, bool lastOnly = false)
    {
        if (IsRewardModel) throw RewardForwardError();
        if (TryCpuDecode(ids, keyValid, positions, cache, lastOnly) is { } fast) return fast;
        var h = model.Forward(ids, positions, keyValid, cache);
        if (lastOnly) h = h.narrow(1, h.shape[1] - 1, 1);
        if (SkipsLogits) return h;
        var logits = Head(h);
        return logits;
    }

    /// <summary>
    /// Logits [B, T, vocab] for packed rows (<see cref="Osprey.Datasets.SequencePacker"/>): each row holds
    /// several samples end to end and <paramref name="positionIds"/> [B, T] restarts at 0 where each sample
    /// begins. RoPE uses those positions and attention is block-diagonal causal — a token sees only earlier
    /// tokens of its own sample — so every sample's logits equal those of running it alone. Right padding
    /// whose positions restart at 0 (as <see cref="Osprey.Datasets.SequencePacker.Collate"/> lays it out) is
    /// a sample of its own.
    /// </summary>
    public Tensor ForwardPacked(Tensor ids, Tensor positionIds)
    {
        if (!ids.shape.SequenceEqual(positionIds.shape))
            throw new ArgumentException($"position ids [{string.Join(", ", positionIds.shape)}] do not match input ids [{string.Join(", ", ids.shape)}]");
        if (IsRewardModel) throw RewardForwardError();
        using var segments = SegmentIds(positionIds);
        var h = model.Forward(ids, positionIds, null, null, segments);
        var logits = Head(h);
        return logits;
    }

    /// <summary>Sample numbers [B, T] for packed position ids: a new sample starts wherever the position is 0.</summary>
    public static Tensor SegmentIds(Tensor positionIds)
    {
        using var starts = positionIds.eq(0).to_type(ScalarType.Int64);
        return starts.cumsum(1);
    }

    /// <summary>
    /// Mean next-token cross-entropy, as transformers computes it: logits[:, :-1] against labels[:, 1:],
    /// positions labelled -100 ignored, computed in float32.
    /// </summary>
    public static Tensor Loss(Tensor logits, Tensor labels)
    {
        long t = logits.shape[1], v = logits.shape[2];
        var shifted = logits.narrow(1, 0, t - 1).to_type(ScalarType.Float32).reshape(-1, v);
        var targets = labels.narrow(1, 1, t - 1).reshape(-1);
        return nn.functional.cross_entropy(shifted, targets, ignore_index: -100);
    }

    /// <summary>A new KV cache for <paramref name="batch"/> rows and <paramref name="capacity"/> positions.</summary>
    public KvCache NewCache(long batch, long capacity) => new(Spec, batch, capacity, DType, Device);
}
