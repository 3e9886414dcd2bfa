using System.Text.RegularExpressions;
using Osprey.Models;

namespace Osprey.Tuners.Lora;

/// <summary>
/// The module paths PEFT's adapter keys use (<c>base_model.model.</c> + path) for a vision-language model, against the
/// names Osprey keeps the model under (the hub checkpoint's: <c>model.layers.N…</c>, <c>visual.…</c>,
/// <c>vision_tower.vision_model.…</c>). PEFT names a module by its path in the live transformers model, which in
/// transformers 5 nests the parts under <c>model.</c>. Checked on transformers 5.17's own <c>state_dict()</c> names that
/// tests/fixtures/vl/*/golden.json record (tools/make_vl_fixtures.py, make_llava_fixtures.py):
/// Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration hold
/// <c>model.language_model.layers.0.self_attn.q_proj</c>, <c>model.visual.blocks.0.attn.qkv</c>, <c>lm_head</c>;
/// LlavaForConditionalGeneration and LlavaNextForConditionalGeneration hold
/// <c>model.language_model.layers.0…</c>, <c>model.vision_tower.encoder.layers.0.self_attn.q_proj</c> (no
/// <c>vision_model.</c> level), <c>model.multi_modal_projector.linear_1</c>, <c>model.image_newline</c>, <c>lm_head</c>.
/// The same classes' <c>_checkpoint_conversion_mapping</c> (modeling_qwen2_vl.py: <c>^visual → model.visual</c>,
/// <c>^model(?!\.(language_model|visual)) → model.language_model</c>; modeling_llava.py / modeling_llava_next.py:
/// <c>^language_model.model → model.language_model</c>, <c>^vision_tower → model.vision_tower</c>,
/// <c>^multi_modal_projector → model.multi_modal_projector</c>, <c>^language_model.lm_head → lm_head</c>) says the same
/// of the saved names. Text models' paths are Osprey's names, unchanged.
/// </summary>
internal static class PeftModulePaths
{
    /// <summary>How a model's names relate to transformers 5's module paths.</summary>
    internal enum Layout { Text, Qwen2Vl, Llava }

    /// <summary>The layout of <paramref name="model"/>.</summary>
    public static Layout Of(CausalLM model) =>
        !model.IsVisionLanguage ? Layout.Text : model.Vision is not null ? Layout.Qwen2Vl : Layout.Llava;

    /// <summary>transformers 5's module path of Osprey's name <paramref name="name"/> (a module path or a tensor name).</summary>
    public static string ToPeft(Layout layout, string name) => layout switch
    {
        Layout.Qwen2Vl => name.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + name["model.".Length..]
            : name.StartsWith("visual.", StringComparison.Ordinal) ? "model." + name
            : name,
        Layout.Llava => name.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + name["model.".Length..]
            : name.StartsWith("vision_tower.vision_model.", StringComparison.Ordinal) ? "model.vision_tower." + name["vision_tower.vision_model.".Length..]
            : name.StartsWith("multi_modal_projector.", StringComparison.Ordinal) || name == "image_newline" ? "model." + name
            : name,
        _ => name,
    };

    /// <summary>
    /// Osprey's name for an adapter key's module path in any layout an adapter of this family was saved in: transformers
    /// 5's (what Osprey writes now), transformers 4.52+'s (<c>model.vision_tower.vision_model.…</c>), the older
    /// <c>language_model.model.…</c> / <c>model.layers.…</c> of transformers 4 and of Osprey before it wrote
    /// transformers 5's paths. Idempotent: Osprey's own names map to themselves.
    /// </summary>
    public static string ToModel(Layout layout, string path) => layout switch
    {
        Layout.Qwen2Vl => Models.Qwen2Vl.Qwen2VlModel.Canonical(path),
        Layout.Llava => Models.Llava.LlavaNames.ToModel(path) ?? path,
        _ => path,
    };

    /// <summary>
    /// A PEFT <c>target_modules</c> regex (matched by <c>re.fullmatch</c> against every module path) that selects exactly
    /// the adapted layers <paramref name="adapted"/> among <paramref name="linear"/> (all PEFT paths): layer numbers
    /// become <c>\d+</c> when that selects nothing more, else the paths are listed.
    /// </summary>
    public static string TargetRegex(IReadOnlyCollection<string> adapted, IReadOnlyCollection<string> linear)
    {
        var general = adapted.Select(p => Regex.Replace(Regex.Escape(p), @"\\\.\d+\\\.", @"\.\d+\.")).Distinct().Order(StringComparer.Ordinal).ToList();
        var regex = string.Join("|", general);
        var chosen = new HashSet<string>(adapted, StringComparer.Ordinal);
        if (linear.Any(p => !chosen.Contains(p) && Regex.IsMatch(p, $"^(?:{regex})$")))
            regex = string.Join("|", adapted.Order(StringComparer.Ordinal).Select(Regex.Escape));
        return regex;
    }
}
