using System.Text.Json.Nodes;
using Osprey.Cli.Args;
using Osprey.Models;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>--adapters DIR...</c>: PEFT LoRA adapters (Osprey checkpoints or PEFT's own) applied to the base model. Without
/// <c>--model</c> the base model (and, without <c>--template</c>, the template) come from the first adapter's
/// args.json, else from adapter_config.json's base_model_name_or_path, as ms-swift does.
/// </summary>
internal sealed record AdapterFlags(IReadOnlyList<string> Paths)
{
    public const string Help =
        "  --adapters DIR...        LoRA adapters (checkpoint-N folders or PEFT adapters) merged into the model at load;\n" +
        "                           without --model the base model and template come from the adapter's args.json.\n";

    public static AdapterFlags Read(OptionReader o) => new(o.List("adapters"));

    public bool Any => Paths.Count > 0;

    /// <summary>The base model folder and the training template: --model if given, else what the first adapter records.</summary>
    public (ModelFlags Flags, string? Template) Resolve(ModelFlags flags, string? template)
    {
        foreach (var path in Paths)
        {
            if (!Directory.Exists(path)) throw new UserError($"--adapters {path} does not exist.");
            if (!PeftAdapter.IsAdapter(path)) throw new UserError($"--adapters {path} has no adapter_config.json; pass a LoRA checkpoint-N folder or a PEFT adapter folder.");
        }
        if (!Any) return (flags, template);
        var args = ReadArgs(Paths[0]);
        if (flags.Model is null)
        {
            var recorded = args?["model_dir"]?.GetValue<string>() ?? args?["model"]?.GetValue<string>();
            if (recorded is null)
            {
                recorded = PeftAdapter.ReadConfig(Paths[0]).BaseModel;
            }
            if (recorded is null) throw new UserError($"{Paths[0]} does not name its base model (no args.json, no base_model_name_or_path); pass --model.");
            flags = new ModelFlags(flags.Options with { Model = recorded });
        }
        template ??= args?["template"]?.GetValue<string>();
        return (flags, template);
    }

    /// <summary>Loads the model and merges every adapter into it, in order.</summary>
    public CausalLM Load(string folder, ModelLoadOptions load, TextWriter stderr)
    {
        var model = CausalLM.Load(folder, load);
        try
        {
            foreach (var path in Paths)
            {
                var n = PeftAdapter.MergeInto(model, path);
                stderr.WriteLine($"osprey: merged adapter {path} ({n} layers).");
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The args.json beside or above an adapter (checkpoint-N/args.json or its run folder's).</summary>
    static JsonObject? ReadArgs(string adapter)
    {
        foreach (var dir in new[] { adapter, Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(adapter))) })
        {
            if (dir is null) continue;
            var path = Path.Combine(dir, "args.json");
            if (!File.Exists(path)) continue;
            try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
            catch (System.Text.Json.JsonException e) { throw new UserError($"{path} is not valid JSON ({e.Message}).", e); }
        }
        return null;
    }
}
