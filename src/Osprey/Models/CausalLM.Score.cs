using System.Reflection;
using System.Text.Json.Nodes;
using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

// Reward models: transformers' *ForSequenceClassification layout (model.* + score.weight, no lm_head).
public sealed partial class CausalLM
{
#pragma warning disable IDE0044 // TorchSharp registers fields by reflection; keep them plain fields.
    ScoreHead? score;
#pragma warning restore IDE0044

    const string SequenceClassification = "ForSequenceClassification";

    /// <summary>
    /// True when the model carries a <c>score</c> head (transformers' *ForSequenceClassification): it gives
    /// <see cref="Scores"/> and has no language-model head, so <see cref="Forward"/> is refused.
    /// </summary>
    public bool IsRewardModel => score is not null;

    /// <summary>Rows of the score head (transformers' num_labels); 0 without one.</summary>
    public int NumLabels => score is null ? 0 : (int)score.NumLabels;

    /// <summary>The score head's weight [num_labels, hidden], state-dict key <c>score.weight</c>; null without one.</summary>
    public TorchSharp.Modules.Parameter? ScoreWeight => score?.Weight;

    /// <summary>
    /// Turns the model into a reward model: adds a trainable <c>score</c> head Linear(hidden, <paramref name="numLabels"/>,
    /// bias=False) initialised as transformers does (normal(0, initializer_range of config.json, else 0.02)), drawn
    /// from a CPU generator seeded with <paramref name="seed"/> and stored in the model's dtype, and drops the
    /// language-model head (state_dict then holds <c>model.*</c> and <c>score.weight</c>, as transformers'
    /// *ForSequenceClassification).
    /// </summary>
    /// <exception cref="InvalidOperationException">The model already has a score head.</exception>
    public void AttachScoreHead(int numLabels = 1, long seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numLabels, 1);
        if (score is not null) throw new InvalidOperationException("the model already has a score head.");
        var head = new ScoreHead(Spec.HiddenSize, numLabels, DType, Device, trainable: true);
        using (no_grad())
        {
            using var g = new Generator((ulong)seed, CPU);
            using var init = empty(numLabels, Spec.HiddenSize, dtype: ScalarType.Float32).normal_(0, InitializerRange(), g);
            head.Weight.copy_(init);
        }
        AddScoreHead(head);
    }

    void AddScoreHead(ScoreHead head)
    {
        if (lm_head is not null)
        {
            RemoveSubmodule("lm_head");
            lm_head.Dispose();
            lm_head = null;
        }
        score = head;
        register_module("score", head);
    }

    void RemoveSubmodule(string name)
    {
        // TorchSharp has no public unregister; the registry is nn.Module's _internal_submodules dictionary.
        var field = typeof(nn.Module).GetField("_internal_submodules", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("TorchSharp's nn.Module has no _internal_submodules; cannot drop lm_head.");
        var registry = field.GetValue(this)!;
        var remove = registry.GetType().GetMethod("Remove", [typeof(string)])
            ?? throw new InvalidOperationException($"TorchSharp's module registry ({registry.GetType().Name}) has no Remove(string).");
        remove.Invoke(registry, [name]);
    }

    double InitializerRange()
    {
        if (SourceDirectory is null) return 0.02;
        var path = Path.Combine(SourceDirectory, "config.json");
        if (!File.Exists(path)) return 0.02;
        var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        return json?["initializer_range"] is JsonValue v && v.TryGetValue<double>(out var r) ? r : 0.02;
    }

    /// <summary>
    /// Scores [B, num_labels] in float32 for ids [B, T]: the score head applied to the final-norm hidden state at
    /// each row's last real token — the last position where <paramref name="keyValid"/> [B, T] is 1, or, without it,
    /// where ids differ from config.json's pad_token_id (the last position when there is none), as transformers'
    /// *ForSequenceClassification picks it. Meant for right padding (positions 0..T-1; real tokens never attend to
    /// the padding after them); a left-padded <paramref name="keyValid"/> also masks the padding keys. Differentiable.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no score head (<see cref="AttachScoreHead"/>).</exception>
    /// <remarks>A vision-language model takes the rows' <paramref name="images"/> (all rows' images in placeholder order,
    /// row after row): their features replace the placeholder tokens and Qwen2-VL's rows take M-RoPE positions, as in
    /// training; right padding only then.</remarks>
    public Tensor Scores(Tensor ids, Tensor? keyValid = null, IReadOnlyList<Images.ProcessedImage>? images = null)
    {
        var head = score ?? throw new InvalidOperationException("Scores needs a reward model: load a *ForSequenceClassification folder or call AttachScoreHead first.");
        long b = ids.shape[0], t = ids.shape[1];
        if (keyValid is not null && (keyValid.shape.Length != 2 || keyValid.shape[0] != b || keyValid.shape[1] != t))
            throw new ArgumentException($"keyValid [{string.Join(", ", keyValid.shape)}] does not match input ids [{b}, {t}]");
        using var scope = NewDisposeScope();
        var valid = keyValid?.to(ids.device).to_type(ScalarType.Int64) ?? (Spec.PadTokenId is int pad ? ids.ne(pad).to_type(ScalarType.Int64) : null);
        var last = valid is null
            ? full(b, t - 1, dtype: ScalarType.Int64, device: ids.device)
            : (arange(t, dtype: ScalarType.Int64, device: ids.device).unsqueeze(0) * valid).argmax(-1);
        var leftPadded = keyValid is not null && valid!.narrow(1, 0, 1).eq(0).any().item<bool>();
        Tensor h;
        if (images is { Count: > 0 })
        {
            if (leftPadded) throw new ArgumentException("rows with images must be right-padded", nameof(keyValid));
            h = model.ForwardEmbeds(EmbedWithImages(ids, images), ImagePositions(ids, images).Positions, null, null);
        }
        else h = model.Forward(ids, null, leftPadded ? valid!.to_type(keyValid!.dtype) : null, null);
        var rows = arange(b, dtype: ScalarType.Int64, device: ids.device) * t + last;
        var picked = h.reshape(b * t, h.shape[2]).index_select(0, rows);
        return head.forward(picked).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The first label's score at every position, [B, T] float32, for right-padded ids [B, T] (causal attention, so the
    /// padding after a row's tokens never changes them): PPO's value model reads one value per token this way. Differentiable.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no score head (<see cref="AttachScoreHead"/>).</exception>
    public Tensor TokenScores(Tensor ids)
    {
        var head = score ?? throw new InvalidOperationException("TokenScores needs a reward model: load a *ForSequenceClassification folder or call AttachScoreHead first.");
        using var scope = NewDisposeScope();
        var h = model.Forward(ids, null, null, null);
        return head.forward(h).select(2, 0).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// True when <paramref name="directory"/>'s config.json names a *ForSequenceClassification architecture (a
    /// reward model that <see cref="Load(string, Device, ScalarType)"/> gives a score head).
    /// </summary>
    public static bool IsRewardFolder(string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject json && json["architectures"] is JsonArray a &&
                a.Any(n => n is JsonValue v && v.TryGetValue<string>(out var s) && s.EndsWith(SequenceClassification, StringComparison.Ordinal));
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    /// <summary>The score head's label count for a checkpoint: from score.weight, else config.json (id2label/num_labels) when its architecture is *ForSequenceClassification; null for a causal LM.</summary>
    static int? ScoreLabels(string directory, SafetensorsCheckpoint checkpoint)
    {
        if (checkpoint.Contains("score.weight") && !checkpoint.Contains("lm_head.weight"))
            return (int)checkpoint.Entry("score.weight").Shape[0];
        if (!IsRewardFolder(directory)) return null;
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "config.json")))!.AsObject();
        if (json["id2label"] is JsonObject labels && labels.Count > 0) return labels.Count;
        if (json["num_labels"] is JsonValue n && n.TryGetValue<int>(out var count)) return count;
        return 1;
    }

    /// <summary>A reward model's config.json: *ForSequenceClassification architectures and id2label/label2id for its labels.</summary>
    void ApplyRewardConfig(JsonObject config)
    {
        var names = config["architectures"] is JsonArray a ? a.Select(n => n?.GetValue<string>() ?? "").ToList() : [];
        if (names.Count == 0) names.Add(ArchitecturePrefix(config) + "ForCausalLM");
        config["architectures"] = new JsonArray(names.Select(s => (JsonNode?)JsonValue.Create(Classifier(s))).ToArray());
        var n = NumLabels;
        if (config["id2label"] is not JsonObject existing || existing.Count != n)
        {
            config["id2label"] = new JsonObject(Enumerable.Range(0, n).Select(i => KeyValuePair.Create(i.ToString(System.Globalization.CultureInfo.InvariantCulture), (JsonNode?)JsonValue.Create($"LABEL_{i}"))));
            config["label2id"] = new JsonObject(Enumerable.Range(0, n).Select(i => KeyValuePair.Create($"LABEL_{i}", (JsonNode?)JsonValue.Create(i))));
        }
        config.Remove("num_labels");
        if (!config.ContainsKey("pad_token_id") && Spec.PadTokenId is int pad) config["pad_token_id"] = pad;
    }

    static string Classifier(string architecture)
    {
        if (architecture.EndsWith(SequenceClassification, StringComparison.Ordinal)) return architecture;
        var i = architecture.IndexOf("For", StringComparison.Ordinal);
        return (i > 0 ? architecture[..i] : architecture) + SequenceClassification;
    }

    static string ArchitecturePrefix(JsonObject config) => (config["model_type"]?.GetValue<string>() ?? "Llama") switch
    {
        "qwen2" => "Qwen2",
        "qwen3" => "Qwen3",
        "llama" => "Llama",
        "mistral" => "Mistral",
        "phi3" => "Phi3",
        "gemma2" => "Gemma2",
        "gemma3_text" => "Gemma3",
        var other => other,
    };

    static InvalidOperationException RewardForwardError() =>
        new("this is a reward model (a score head, no language-model head): it gives Scores(ids, keyValid), not next-token logits.");
}
