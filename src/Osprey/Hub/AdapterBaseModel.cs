using System.Text.Json.Nodes;
using Osprey.Tuners.Lora;

namespace Osprey.Hub;

/// <summary>
/// The base model of <c>--adapters</c> (Osprey checkpoints or PEFT's own): without <c>--model</c> the base model
/// (and, without <c>--template</c>, the template) come from the first adapter's args.json, else from
/// adapter_config.json's base_model_name_or_path, as ms-swift does.
/// </summary>
public static class AdapterBaseModel
{
    /// <summary>
    /// Checks every adapter folder, then returns <paramref name="model"/> with --model filled from the first adapter
    /// when it was not given, and <paramref name="template"/> or the template the adapter was trained with.
    /// </summary>
    /// <exception cref="OspreyException">An adapter folder is missing or not an adapter, or names no base model.</exception>
    public static (ModelOptions Model, string? Template) Resolve(IReadOnlyList<string> adapters, ModelOptions model, string? template)
    {
        foreach (var path in adapters)
        {
            if (!Directory.Exists(path)) throw new OspreyException($"--adapters {path} does not exist.");
            if (!PeftAdapter.IsAdapter(path)) throw new OspreyException($"--adapters {path} has no adapter_config.json; pass a LoRA checkpoint-N folder or a PEFT adapter folder.");
        }
        if (adapters.Count == 0) return (model, template);
        var args = ReadArgs(adapters[0]);
        if (model.Model is null)
        {
            var recorded = args?["model_dir"]?.GetValue<string>() ?? args?["model"]?.GetValue<string>() ?? PeftAdapter.ReadConfig(adapters[0]).BaseModel;
            if (recorded is null) throw new OspreyException($"{adapters[0]} does not name its base model (no args.json, no base_model_name_or_path); pass --model.");
            model = model with { Model = recorded };
        }
        template ??= args?["template"]?.GetValue<string>();
        return (model, template);
    }

    /// <summary>The args.json beside or above an adapter (checkpoint-N/args.json or its run folder's).</summary>
    static JsonObject? ReadArgs(string adapter)
    {
        foreach (var dir in new[] { adapter, Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(adapter))) })
        {
            if (dir is null) continue;
            var path = Path.Combine(dir, "args.json");
            if (!File.Exists(path)) continue;
            try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
            catch (System.Text.Json.JsonException e) { throw new OspreyException($"{path} is not valid JSON ({e.Message}).", e); }
        }
        return null;
    }
}
