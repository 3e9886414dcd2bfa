using System.Text.RegularExpressions;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// ms-swift's <c>--freeze_vit</c>, <c>--freeze_aligner</c>, <c>--freeze_llm</c>, <c>--vit_lr</c> and <c>--aligner_lr</c>
/// for a Qwen2-VL / Qwen2.5-VL model, whose parameters split by hub name into the vision tower (<c>visual.</c>), the
/// aligner (<c>visual.merger.</c>, the patch merger) and the language model (everything else: <c>model.</c>,
/// <c>lm_head</c>), as ms-swift's model_arch for these models does. Full training trains the unfrozen parts; LoRA with
/// <c>--target_modules all-linear</c> adapts the linear layers of the unfrozen parts only (so by default the language
/// model's), as ms-swift's documentation says of these flags.
/// </summary>
internal static class VisionFreezing
{
    const string Vit = "visual.";
    const string Aligner = "visual.merger.";

    /// <summary>Whether full training trains the parameter (or LoRA the adapter) named <paramref name="name"/>.</summary>
    public static bool Trains(TrainerOptions o, string name) =>
        name.StartsWith(Aligner, StringComparison.Ordinal) ? !o.FreezeAligner
        : name.StartsWith(Vit, StringComparison.Ordinal) ? !o.FreezeVit
        : !o.FreezeLlm;

    /// <summary>The learning-rate multiplier of <paramref name="name"/>: --vit_lr / --aligner_lr over --learning_rate, else 1.</summary>
    public static double LrScale(TrainerOptions o, string name)
    {
        double? lr = name.StartsWith(Aligner, StringComparison.Ordinal) ? o.AlignerLr
            : name.StartsWith(Vit, StringComparison.Ordinal) ? o.VitLr
            : null;
        return lr is double v ? v / o.ResolvedLearningRate : 1.0;
    }

    /// <summary>The LoRA options a run of <paramref name="model"/> attaches and saves (<see cref="LoraTargets"/> for a vision-language model).</summary>
    public static LoraOptions LoraFor(Models.CausalLM model, TrainerOptions o) => model.IsVisionLanguage ? LoraTargets(o, o.Lora) : o.Lora;

    /// <summary>
    /// The LoRA options with <c>all-linear</c> narrowed to the unfrozen parts, as a PEFT target regex (what ms-swift
    /// writes too); other module names stay targets wherever they are. Options without all-linear, or with
    /// --target_regex, are returned as they are: the user chose the layers.
    /// </summary>
    public static LoraOptions LoraTargets(TrainerOptions o, LoraOptions lora)
    {
        if (lora.TargetRegex is not null || !lora.TargetModules.Any(m => m is "all-linear" or "all_linear")) return lora;
        var parts = new List<string>();
        if (!o.FreezeLlm) parts.Add(@"(?!visual\.|lm_head$).*");
        if (!o.FreezeVit) parts.Add(@"visual\.(?!merger\.).*");
        if (!o.FreezeAligner) parts.Add(@"visual\.merger\..*");
        parts.AddRange(lora.TargetModules.Where(m => m is not ("all-linear" or "all_linear")).Select(m => @"(?:.*\.)?" + Regex.Escape(m)));
        if (parts.Count == 0)
            throw new OspreyException("--freeze_llm true with --freeze_vit true and --freeze_aligner true leaves --target_modules all-linear nothing to adapt; unfreeze a part.");
        return lora with { TargetRegex = string.Join("|", parts), TargetModules = [] };
    }
}
