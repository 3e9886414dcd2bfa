using System.Text.RegularExpressions;
using Osprey.Models;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// ms-swift's <c>--freeze_vit</c>, <c>--freeze_aligner</c>, <c>--freeze_llm</c>, <c>--vit_lr</c> and <c>--aligner_lr</c>
/// for a vision-language model, whose parameters split by hub name into the vision tower, the aligner and the language
/// model (everything else), as ms-swift's model_arch does: Qwen2-VL's tower is <c>visual.</c> with the patch merger
/// <c>visual.merger.</c> as aligner; LLaVA's tower is <c>vision_tower.</c> and its aligner <c>multi_modal_projector.</c>
/// (with LLaVA-NeXT's <c>image_newline</c>). The names come from <see cref="VisionInput"/>. Full training trains the
/// unfrozen parts; LoRA with <c>--target_modules all-linear</c> adapts the linear layers of the unfrozen parts only (so
/// by default the language model's), as ms-swift's documentation says of these flags.
/// </summary>
internal static class VisionFreezing
{
    static bool IsAligner(VisionInput v, string name) => v.AlignerPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));
    static bool IsTower(VisionInput v, string name) => name.StartsWith(v.TowerPrefix, StringComparison.Ordinal);

    /// <summary>Whether full training trains the parameter (or LoRA the adapter) named <paramref name="name"/>.</summary>
    public static bool Trains(TrainerOptions o, VisionInput v, string name) =>
        IsAligner(v, name) ? !o.FreezeAligner
        : IsTower(v, name) ? !o.FreezeVit
        : !o.FreezeLlm;

    /// <summary>The learning-rate multiplier of <paramref name="name"/>: --vit_lr / --aligner_lr over --learning_rate, else 1.</summary>
    public static double LrScale(TrainerOptions o, VisionInput v, string name)
    {
        double? lr = IsAligner(v, name) ? o.AlignerLr
            : IsTower(v, name) ? o.VitLr
            : null;
        return lr is double x ? x / o.ResolvedLearningRate : 1.0;
    }

    /// <summary>The LoRA options a run of <paramref name="model"/> attaches and saves (<see cref="LoraTargets"/> for a vision-language model).</summary>
    public static LoraOptions LoraFor(Models.CausalLM model, TrainerOptions o) => model.ImageInput is { } v ? LoraTargets(o, o.Lora, v) : o.Lora;

    /// <summary>
    /// The LoRA options with <c>all-linear</c> narrowed to the unfrozen parts, as a PEFT target regex (what ms-swift
    /// writes too); other module names stay targets wherever they are. Options without all-linear, or with
    /// --target_regex, are returned as they are: the user chose the layers.
    /// </summary>
    public static LoraOptions LoraTargets(TrainerOptions o, LoraOptions lora, VisionInput v)
    {
        if (lora.TargetRegex is not null || !lora.TargetModules.Any(m => m is "all-linear" or "all_linear")) return lora;
        var tower = Regex.Escape(v.TowerPrefix);
        var aligners = string.Join("|", v.AlignerPrefixes.Select(Regex.Escape));
        var parts = new List<string>();
        if (!o.FreezeLlm) parts.Add($@"(?!{tower}|{aligners}|lm_head$).*");
        if (!o.FreezeVit)
        {
            // An aligner inside the tower (Qwen2-VL's visual.merger.) is not the tower's.
            var inner = v.AlignerPrefixes.Where(a => a.StartsWith(v.TowerPrefix, StringComparison.Ordinal)).Select(a => Regex.Escape(a[v.TowerPrefix.Length..])).ToList();
            parts.Add(inner.Count == 0 ? $"{tower}.*" : $"{tower}(?!{string.Join("|", inner)}).*");
        }
        if (!o.FreezeAligner) parts.Add($@"(?:{aligners}).*");
        parts.AddRange(lora.TargetModules.Where(m => m is not ("all-linear" or "all_linear")).Select(m => @"(?:.*\.)?" + Regex.Escape(m)));
        if (parts.Count == 0)
            throw new OspreyException("--freeze_llm true with --freeze_vit true and --freeze_aligner true leaves --target_modules all-linear nothing to adapt; unfreeze a part.");
        return lora with { TargetRegex = string.Join("|", parts), TargetModules = [] };
    }
}
