using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// LoRA adapters in PEFT's folder format: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> whose keys
/// are <c>base_model.model.&lt;module path&gt;.lora_A.weight</c>, <c>.lora_B.weight</c>, DoRA's
/// <c>.lora_magnitude_vector</c>, and for modules_to_save the module's own tensors
/// (<c>base_model.model.lm_head.weight</c>). Osprey writes what <c>PeftModel.from_pretrained</c> reads and reads what
/// PEFT writes.
/// </summary>
public static class PeftAdapter
{
    /// <summary>The adapter configuration file name.</summary>
    public const string ConfigFile = "adapter_config.json";

    /// <summary>The adapter weights file name.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    const string Prefix = "base_model.model.";

    /// <summary>True when <paramref name="directory"/> holds a PEFT adapter.</summary>
    public static bool IsAdapter(string directory) => File.Exists(Path.Combine(directory, ConfigFile));

    /// <summary>
    /// Reads adapter_config.json into LoRA options (rank, alpha, dropout, targets, rslora, DoRA, modules_to_save,
    /// rank/alpha patterns) and the base model it names.
    /// </summary>
    public static (LoraOptions Options, string? BaseModel) ReadConfig(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) throw new OspreyException($"{directory} has no {ConfigFile}; pass a PEFT adapter folder (a LoRA checkpoint-N folder).");
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new OspreyException($"{path} is empty."); }
        catch (JsonException e) { throw new OspreyException($"{path} is not valid JSON ({e.Message}).", e); }
        var type = Field<string>(json, "peft_type", path, "a string") ?? "LORA";
        if (!type.Equals("LORA", StringComparison.OrdinalIgnoreCase))
            throw new OspreyException($"{path}: peft_type '{type}' is not supported; Osprey loads LoRA (and DoRA) adapters.");
        if (Value<bool>(json, "fan_in_fan_out", path, "true or false") == true)
            throw new OspreyException($"{path}: fan_in_fan_out adapters (GPT-2 Conv1D layers) are not supported.");
        var options = new LoraOptions
        {
            Rank = Value<int>(json, "r", path, "an integer") ?? 8,
            Alpha = Value<double>(json, "lora_alpha", path, "a number") ?? 8,
            Dropout = Value<double>(json, "lora_dropout", path, "a number") ?? 0,
            UseRslora = Value<bool>(json, "use_rslora", path, "true or false") ?? false,
            UseDora = Value<bool>(json, "use_dora", path, "true or false") ?? false,
            ModulesToSave = Names(json, "modules_to_save", path) ?? [],
            RankPattern = Pattern<int>(json, "rank_pattern", path, "integers"),
            AlphaPattern = Pattern<double>(json, "alpha_pattern", path, "numbers"),
        };
        if (IsSequenceClassification(json) && !options.ModulesToSave.Contains(ScoreModule))
            options = options with { ModulesToSave = [.. options.ModulesToSave, ScoreModule] }; // PEFT adds the classifier itself
        switch (json["target_modules"])
        {
            case null:
                break;
            case JsonArray:
                options = options with { TargetModules = Names(json, "target_modules", path)! };
                break;
            case JsonValue v when v.TryGetValue<string>(out var s):
                options = s is "all-linear" ? options with { TargetModules = ["all-linear"] } : options with { TargetRegex = s, TargetModules = [] };
                break;
            default:
                throw WrongKind(json, "target_modules", path, "a list of module names or a regex string");
        }
        return (options, Field<string>(json, "base_model_name_or_path", path, "a string"));
    }

    // adapter_config.json is the user's file (hand-edited, or from another tool): a field of the wrong kind is one
    // sentence naming the file and the field, not an InvalidOperationException from System.Text.Json.
    static T? Value<T>(JsonObject json, string field, string path, string what) where T : struct =>
        json[field] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<T>(out var x) => x,
            _ => throw WrongKind(json, field, path, what),
        };

    static T? Field<T>(JsonObject json, string field, string path, string what) where T : class =>
        json[field] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<T>(out var x) => x,
            _ => throw WrongKind(json, field, path, what),
        };

    static List<string>? Names(JsonObject json, string field, string path) =>
        json[field] switch
        {
            null => null,
            JsonArray list when list.All(n => n is JsonValue v && v.TryGetValue<string>(out _)) => list.Select(n => n!.GetValue<string>()).ToList(),
            _ => throw WrongKind(json, field, path, "a list of module names"),
        };

    static Dictionary<string, T> Pattern<T>(JsonObject json, string field, string path, string what) where T : struct =>
        json[field] switch
        {
            null => new Dictionary<string, T>(),
            JsonObject map when map.All(kv => kv.Value is JsonValue v && v.TryGetValue<T>(out _)) => map.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<T>()),
            _ => throw WrongKind(json, field, path, $"an object mapping module patterns to {what}"),
        };

    /// <summary>
    /// Refuses an adapter whose tensors adapt <paramref name="path"/> while its adapter_config.json's target_modules do
    /// not name it: the config and the weights disagree (PEFT refuses such a folder too), so neither can be trusted.
    /// </summary>
    internal static void EnsureTarget(CausalLM model, LoraOptions options, string path, string directory) =>
        EnsureTarget(PeftModulePaths.Of(model), options, path, directory);

    static void EnsureTarget(PeftModulePaths.Layout layout, LoraOptions options, string path, string directory)
    {
        // A regex may be over Osprey's names (adapters saved before) or transformers 5's module paths (saved now, and PEFT's).
        if (LoraTargets.IsTarget(options, path) || LoraTargets.IsTarget(options, PeftModulePaths.ToPeft(layout, path))) return;
        var targets = options.TargetRegex is { } regex ? $"'{regex}'" : string.Join(", ", options.TargetModules);
        throw new OspreyException($"{Path.Combine(directory, WeightsFile)} adapts '{path}', which target_modules ({targets}) in {Path.Combine(directory, ConfigFile)} does not name; fix target_modules or save the adapter again.");
    }

    static OspreyException WrongKind(JsonObject json, string field, string path, string what) =>
        new($"{path}: field '{field}' is {json[field]?.ToJsonString() ?? "null"}, not {what}; fix it or save the adapter again.");

    /// <summary>
    /// Writes <paramref name="model"/>'s attached adapter (and modules_to_save tensors) as a PEFT folder, each
    /// file to a temporary name and then renamed. <paramref name="masters"/> may supply a more precise copy of a
    /// tensor by name (a trainer's float32 master of a bf16 parameter); it is written instead.
    /// </summary>
    public static void Save(CausalLM model, LoraOptions options, string directory, string? baseModel, Func<string, Tensor?>? masters = null)
    {
        Directory.CreateDirectory(directory);
        if (model.IsRewardModel && !options.ModulesToSave.Contains(ScoreModule)) options = options with { ModulesToSave = [.. options.ModulesToSave, ScoreModule] };
        // A vision-language model's keys name transformers 5's module paths (PeftModulePaths), which PEFT looks up.
        var layout = PeftModulePaths.Of(model);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, p) in model.LoraParameters()) tensors.Add(new(Prefix + PeftModulePaths.ToPeft(layout, name), masters?.Invoke(name) ?? p));
        foreach (var (name, p) in ModulesToSaveParameters(model, options)) tensors.Add(new(Prefix + PeftModulePaths.ToPeft(layout, name), masters?.Invoke(name) ?? p));
        SafetensorsWriter.Write(Path.Combine(directory, WeightsFile), tensors);
        // A regex was written against Osprey's names and only ever meets linear layers here; PEFT matches it against every
        // module path of the transformers model, so a vision-language model's regex is rewritten to select exactly the
        // adapted layers by their transformers 5 paths.
        // Short names are kept unless PEFT would also find them in layers Osprey does not adapt (the tower's q_proj when
        // the user's regex or freezing left it out, a SigLIP pooling head's fc1 that LLaVA never runs): then too the
        // adapted layers are named exactly, so PEFT builds no adapter the file lacks.
        if (layout != PeftModulePaths.Layout.Text && model.FindState<LoraState>() is { Layers.Count: > 0 } state)
        {
            // The checkpoint's linear layers the model does not hold (a SigLIP pooling head) are modules of PEFT's model too.
            var linear = model.named_modules().Where(m => m.module is LinearLayer or TorchSharp.Modules.Linear).Select(m => m.name).Concat(model.UnusedLinearModules).ToList();
            var adapted = state.Layers.Keys.ToHashSet(StringComparer.Ordinal);
            if (options.TargetRegex is not null || linear.Any(p => !adapted.Contains(p) && LoraTargets.IsTarget(options, p)))
                options = options with
                {
                    TargetRegex = PeftModulePaths.TargetRegex(adapted.Select(k => PeftModulePaths.ToPeft(layout, k)).ToList(),
                        linear.Select(p => PeftModulePaths.ToPeft(layout, p)).ToList()),
                    TargetModules = [],
                };
        }
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = model.IsRewardModel ? "SEQ_CLS" : "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = options.Rank,
            ["lora_alpha"] = options.Alpha,
            ["lora_dropout"] = options.Dropout,
            ["target_modules"] = options.TargetRegex is { } regex ? JsonValue.Create(regex)
                : options.TargetModules.Contains("all-linear") ? JsonValue.Create("all-linear")
                : new JsonArray(options.TargetModules.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
            ["use_rslora"] = options.UseRslora,
            ["use_dora"] = options.UseDora,
            ["modules_to_save"] = options.ModulesToSave.Count == 0 ? null : new JsonArray(options.ModulesToSave.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["rank_pattern"] = new JsonObject(options.RankPattern.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["alpha_pattern"] = new JsonObject(options.AlphaPattern.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["layers_to_transform"] = null,
            ["layers_pattern"] = null,
        };
        var path = Path.Combine(directory, ConfigFile);
        File.WriteAllText(path + ".tmp", config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>
    /// The base-model parameters that modules_to_save names (a module matches like a LoRA target: its path or its
    /// last components), by state-dict name.
    /// </summary>
    public static IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Tensor)> ModulesToSaveParameters(CausalLM model, LoraOptions options)
    {
        if (options.ModulesToSave.Count == 0) return [];
        var result = new List<(string, TorchSharp.Modules.Parameter)>();
        foreach (var (name, p) in model.BaseParameters())
        {
            // A parameter held by the model itself (LLaVA-NeXT's image_newline) sits in no named module.
            var dot = name.LastIndexOf('.');
            var module = dot < 0 ? "" : name[..dot];
            if (options.ModulesToSave.Any(m => module == m || module.EndsWith("." + m, StringComparison.Ordinal))) result.Add((name, p));
        }
        if (result.Count == 0)
            throw new OspreyException($"--modules_to_save {string.Join(" ", options.ModulesToSave)} matches no module of this {model.Spec.ModelType} model.");
        return result;
    }

    /// <summary>
    /// Loads an adapter folder's tensors into the adapters already attached to <paramref name="model"/> (attach them
    /// with the folder's <see cref="ReadConfig"/> options first). Strict: a tensor the model does not have, or an
    /// adapted layer the file lacks, is an error naming it.
    /// </summary>
    public static void LoadInto(CausalLM model, string directory)
    {
        var (options, _) = ReadConfig(directory);
        using var file = OpenWeights(directory);
        EnsureScoreHead(model, directory, file);
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in model.LoraParameters()) targets[name] = p;
        foreach (var (name, p) in ModulesToSaveParameters(model, options)) targets[name] = p;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var entry in file.Entries)
        {
            var name = Normalize(model, entry.Name);
            if (!targets.TryGetValue(name, out var target))
                throw new OspreyException($"{file.Path} holds '{entry.Name}', which has no place in this model with this adapter_config.json; the adapter was trained for a different model.");
            if (!entry.Shape.SequenceEqual(target.shape))
                throw new OspreyException($"{file.Path}: '{entry.Name}' has shape [{string.Join(", ", entry.Shape)}] but the model expects [{string.Join(", ", target.shape)}]; the adapter was trained for a different model.");
            if (!seen.Add(name))
                throw new OspreyException($"{file.Path} holds '{entry.Name}' and another key naming the same tensor ('{Prefix}{name}'); keep one.");
            using var t = file.ReadTensor(entry.Name);
            target.copy_(t);
        }
        var missing = targets.Keys.Where(k => !seen.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new OspreyException($"{file.Path} lacks '{Prefix}{PeftModulePaths.ToPeft(PeftModulePaths.Of(model), missing[0])}' ({missing.Count} tensors missing); the adapter file is incomplete or adapter_config.json does not match it.");
    }

    /// <summary>
    /// Merges the adapter in <paramref name="directory"/> into the model's weights (W ← W + s·BA, or DoRA's
    /// normalised form; modules_to_save tensors replace the base ones), computed in float32 and stored in the
    /// model's dtype. Nothing is attached, so inference keeps its fused fast paths.
    /// </summary>
    public static int MergeInto(CausalLM model, string directory)
    {
        var (options, _) = ReadConfig(directory);
        using var file = OpenWeights(directory);
        EnsureScoreHead(model, directory, file);
        var layers = model.LinearLayers().ToDictionary(l => l.Path, l => l.Layer.Weight, StringComparer.Ordinal);
        var baseParams = model.BaseParameters().ToDictionary(p => p.Name, p => (Tensor)p.Tensor, StringComparer.Ordinal);
        return Merge(file, options, model.Spec.ModelType, n => Normalize(model, n), layers.GetValueOrDefault, baseParams.GetValueOrDefault,
            path => EnsureTarget(model, options, path, directory));
    }

    /// <summary>
    /// Merges the adapter in <paramref name="directory"/> into the Qwen2-VL / Qwen2.5-VL model <c>osprey infer</c> runs
    /// with images (its tensors carry Osprey's names), as <see cref="MergeInto(CausalLM, string)"/> does.
    /// </summary>
    internal static int MergeInto(Models.Qwen2Vl.Qwen2VlModel model, string directory) =>
        MergeInto(model, model.Spec.ModelType, PeftModulePaths.Layout.Qwen2Vl, name => name, directory);

    /// <summary>
    /// Merges the adapter in <paramref name="directory"/> into the LLaVA / LLaVA-NeXT model <c>osprey infer</c> runs
    /// with images, whose language model is its <c>language_model.</c> (Osprey's <c>model.</c>).
    /// </summary>
    internal static int MergeInto(Models.Llava.LlavaModel model, string directory) =>
        MergeInto(model, model.IsNext ? "llava_next" : "llava", PeftModulePaths.Layout.Llava,
            name => name.StartsWith("model.", StringComparison.Ordinal) ? "language_model." + name["model.".Length..] : name, directory);

    static int MergeInto(TorchSharp.torch.nn.Module module, string modelType, PeftModulePaths.Layout layout, Func<string, string> tensorName, string directory)
    {
        if (IsSequenceClassification(directory))
            throw new OspreyException($"{directory} is a SEQ_CLS (reward model) adapter, which a {modelType} model cannot apply for generation.");
        var (options, _) = ReadConfig(directory);
        using var file = OpenWeights(directory);
        var state = module.state_dict();
        return Merge(file, options, modelType, n => PeftModulePaths.ToModel(layout, Normalize(n)),
            path => state.GetValueOrDefault(tensorName(path + ".weight")), name => state.GetValueOrDefault(tensorName(name)),
            path => EnsureTarget(layout, options, path, directory));
    }

    // The merge itself, over the model's names: linearWeight gives the weight of an adapted layer's path, baseParam a
    // modules_to_save tensor by name.
    static int Merge(SafetensorsFile file, LoraOptions options, string modelType, Func<string, string> modelName,
        Func<string, Tensor?> linearWeight, Func<string, Tensor?> baseParam, Action<string> ensureTarget)
    {
        var byName = ByModelName(file, modelName);
        var used = new HashSet<string>(StringComparer.Ordinal);
        var merged = 0;
        using var _ = no_grad();
        foreach (var (name, stored) in byName)
        {
            if (!name.EndsWith(".lora_A.weight", StringComparison.Ordinal)) continue;
            var path = name[..^".lora_A.weight".Length];
            if (linearWeight(path) is not { } w)
                throw new OspreyException($"{file.Path} adapts '{path}', which this {modelType} model does not have; the adapter was trained for a different model.");
            ensureTarget(path);
            var bName = path + ".lora_B.weight";
            if (!byName.TryGetValue(bName, out var bStored)) throw new OspreyException($"{file.Path} has '{stored}' but no lora_B for it.");
            byName.TryGetValue(path + ".lora_magnitude_vector", out var mStored);
            if (options.UseDora && mStored is null) throw new OspreyException($"{file.Path} is a DoRA adapter but lacks the lora_magnitude_vector of '{path}'.");
            using var a = file.ReadTensor(stored);
            using var b = file.ReadTensor(bStored);
            using var m = mStored is null ? null : file.ReadTensor(mStored);
            if (a.shape[1] != w.shape[1] || b.shape[0] != w.shape[0] || a.shape[0] != b.shape[1])
                throw new OspreyException($"{file.Path}: the adapter of '{path}' (A [{string.Join(", ", a.shape)}], B [{string.Join(", ", b.shape)}]) does not fit its weight [{string.Join(", ", w.shape)}]; the adapter was trained for a different model.");
            var (_, scaling) = options.For(path);
            using var dev = Move(a, w.device);
            using var devB = Move(b, w.device);
            using var devM = m is null ? null : Move(m, w.device);
            using var result = LoraWeights.Merged(w, dev, devB, devM, scaling);
            w.copy_(result);
            used.Add(name);
            used.Add(bName);
            if (mStored is not null) used.Add(path + ".lora_magnitude_vector");
            merged++;
        }
        foreach (var (name, stored) in byName)
        {
            if (used.Contains(name)) continue;
            if (baseParam(name) is not { } target)
                throw new OspreyException($"{file.Path} holds '{stored}', which this {modelType} model has no place for; the adapter was trained for a different model.");
            using var t = file.ReadTensor(stored);
            if (!t.shape.SequenceEqual(target.shape))
                throw new OspreyException($"{file.Path}: '{stored}' has shape [{string.Join(", ", t.shape)}] but the model's is [{string.Join(", ", target.shape)}].");
            target.copy_(t);
        }
        return merged;
    }

    /// <summary>The module a reward model's adapter trains in full (transformers' sequence-classification head).</summary>
    public const string ScoreModule = "score";

    /// <summary>
    /// True when <paramref name="directory"/>'s adapter_config.json has task_type SEQ_CLS: an adapter of a reward model,
    /// whose <c>base_model.model.score.weight</c> replaces the score head (the base is a causal LM or a reward model).
    /// </summary>
    public static bool IsSequenceClassification(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) return false;
        try { return JsonNode.Parse(File.ReadAllText(path)) is JsonObject json && IsSequenceClassification(json); }
        catch (JsonException) { return false; }
    }

    static bool IsSequenceClassification(JsonObject json) =>
        json["task_type"] is JsonValue v && v.TryGetValue<string>(out var t) && t.Equals("SEQ_CLS", StringComparison.OrdinalIgnoreCase);

    /// <summary>A SEQ_CLS adapter on a causal LM: attaches the score head (sized from the adapter's score tensor) so its tensor has a place.</summary>
    static void EnsureScoreHead(CausalLM model, string directory, SafetensorsFile file)
    {
        if (model.IsRewardModel || !IsSequenceClassification(directory)) return;
        var entry = file.Entries.FirstOrDefault(e => Normalize(e.Name) == ScoreModule + ".weight")
            ?? throw new OspreyException($"{file.Path} is a SEQ_CLS adapter but holds no '{Prefix}{ScoreModule}.weight'; the score head was not saved.");
        model.AttachScoreHead((int)entry.Shape[0]);
    }

    static Tensor Move(Tensor t, Device device) => t.to(device);

    internal static SafetensorsFile OpenWeights(string directory)
    {
        var path = Path.Combine(directory, WeightsFile);
        if (File.Exists(path)) return SafetensorsFile.Open(path);
        if (File.Exists(Path.Combine(directory, "adapter_model.bin")))
            throw new OspreyException($"{directory} holds adapter_model.bin (a pickle); Osprey reads safetensors only: re-save it with PEFT's save_pretrained(safe_serialization=True).");
        throw new OspreyException($"{directory} has adapter_config.json but no {WeightsFile}.");
    }

    /// <summary>
    /// A saved key as the model's own name: <see cref="Normalize(string)"/>, then a vision-language model's module path in
    /// any layout its adapters were saved in (<see cref="PeftModulePaths.ToModel"/>).
    /// </summary>
    internal static string Normalize(CausalLM model, string key) => PeftModulePaths.ToModel(PeftModulePaths.Of(model), Normalize(key));

    // One tensor per model name: an adapter holding the same layer under two layouts is ambiguous, not silently half-used.
    static Dictionary<string, string> ByModelName(SafetensorsFile file, Func<string, string> name)
    {
        var byName = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in file.Entries)
            if (!byName.TryAdd(name(e.Name), e.Name))
                throw new OspreyException($"{file.Path} holds both '{byName[name(e.Name)]}' and '{e.Name}', which name the same tensor; keep one.");
        return byName;
    }

    /// <summary>A saved key without PEFT's prefix and adapter name: <c>base_model.model.x.lora_A.default.weight</c> → <c>x.lora_A.weight</c>.</summary>
    internal static string Normalize(string key)
    {
        var name = key.StartsWith(Prefix, StringComparison.Ordinal) ? key[Prefix.Length..] : key;
        name = name.Replace(".lora_A.default.", ".lora_A.").Replace(".lora_B.default.", ".lora_B.");
        if (name.EndsWith(".lora_magnitude_vector.weight", StringComparison.Ordinal)) name = name[..^".weight".Length];
        if (name.EndsWith(".lora_magnitude_vector.default.weight", StringComparison.Ordinal)) name = name[..^".default.weight".Length];
        return name.Replace(".modules_to_save.default.", ".").Replace(".modules_to_save.", ".");
    }
}
