using System.Text.RegularExpressions;

namespace Osprey.Tuners.Lora;

/// <summary>Which modules a LoRA adapter applies to, by PEFT's matching rules.</summary>
public static class LoraTargets
{
    /// <summary>
    /// True when the linear layer at <paramref name="path"/> (e.g. <c>model.layers.0.self_attn.q_proj</c>) is a
    /// target: a regex must match the whole path; a name matches the path itself or its last components;
    /// <c>all-linear</c> matches every linear layer except the output head.
    /// </summary>
    public static bool IsTarget(LoraOptions options, string path)
    {
        if (options.TargetRegex is { } regex) return Regex.IsMatch(path, $"^(?:{regex})$");
        foreach (var name in options.TargetModules)
        {
            if (name is "all-linear" or "all_linear")
            {
                if (path != "lm_head") return true;
                continue;
            }
            if (path == name || path.EndsWith("." + name, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>PEFT's rank_pattern / alpha_pattern rule: the key, as a regex, matches the path's end at a dot boundary.</summary>
    public static bool PatternMatches(string key, string path) => Regex.IsMatch(path, $"^(?:.*\\.)?(?:{key})$");
}
