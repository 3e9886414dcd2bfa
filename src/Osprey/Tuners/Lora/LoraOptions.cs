using Osprey.Options;

namespace Osprey.Tuners.Lora;

/// <summary>
/// A LoRA adapter's shape, as ms-swift's flags and PEFT's <c>adapter_config.json</c> describe it. Defaults are
/// ms-swift's: rank 8, alpha 32, dropout 0.05, every linear layer except the output head.
/// </summary>
// ms-swift's tuner arguments for other tuners or multimodal parts (docs/ms-swift-compat.md).
[NoEffectFlag("lora_bias", LoraShape)]
[NoEffectFlag("lora_dtype", "adapters train in the model's dtype")]
[NoEffectFlag("init_weights", "LoRA B starts at zero and A uniform, as PEFT's default")]
[NoEffectFlag("target_parameters", "use --target_modules or --target_regex")]
[NoEffectFlag("freeze_parameters_regex", "use --freeze_parameters with name prefixes")]
[NoEffectFlag("freeze_parameters_ratio", "use --freeze_parameters with name prefixes")]
[NoEffectFlag("trainable_parameters_regex", "use --trainable_parameters with name prefixes")]
[NoEffectFlag("lora_ga_batch_size", OtherTuner)]
[NoEffectFlag("lora_ga_iters", OtherTuner)]
[NoEffectFlag("lora_ga_max_length", OtherTuner)]
[NoEffectFlag("lora_ga_direction", OtherTuner)]
[NoEffectFlag("lora_ga_scale", OtherTuner)]
[NoEffectFlag("lora_ga_stable_gamma", OtherTuner)]
[NoEffectFlag("fourier_n_frequency", OtherTuner)]
[NoEffectFlag("fourier_scaling", OtherTuner)]
[NoEffectFlag("boft_block_size", OtherTuner)]
[NoEffectFlag("boft_block_num", OtherTuner)]
[NoEffectFlag("boft_dropout", OtherTuner)]
[NoEffectFlag("vera_rank", OtherTuner)]
[NoEffectFlag("vera_projection_prng_key", OtherTuner)]
[NoEffectFlag("vera_dropout", OtherTuner)]
[NoEffectFlag("vera_d_initial", OtherTuner)]
[NoEffectFlag("use_galore", OtherTuner)]
[NoEffectFlag("galore_target_modules", OtherTuner)]
[NoEffectFlag("galore_rank", OtherTuner)]
[NoEffectFlag("galore_update_proj_gap", OtherTuner)]
[NoEffectFlag("galore_scale", OtherTuner)]
[NoEffectFlag("galore_proj_type", OtherTuner)]
[NoEffectFlag("galore_optim_per_parameter", OtherTuner)]
[NoEffectFlag("galore_with_embedding", OtherTuner)]
[NoEffectFlag("galore_quantization", OtherTuner)]
[NoEffectFlag("galore_proj_quant", OtherTuner)]
[NoEffectFlag("galore_proj_bits", OtherTuner)]
[NoEffectFlag("galore_proj_group_size", OtherTuner)]
[NoEffectFlag("galore_cos_threshold", OtherTuner)]
[NoEffectFlag("galore_gamma_proj", OtherTuner)]
[NoEffectFlag("galore_queue_size", OtherTuner)]
[NoEffectFlag("lisa_activated_layers", OtherTuner)]
[NoEffectFlag("lisa_step_interval", OtherTuner)]
[NoEffectFlag("llamapro_num_new_blocks", OtherTuner)]
[NoEffectFlag("llamapro_num_groups", OtherTuner)]
[NoEffectFlag("adalora_target_r", OtherTuner)]
[NoEffectFlag("adalora_init_r", OtherTuner)]
[NoEffectFlag("adalora_tinit", OtherTuner)]
[NoEffectFlag("adalora_tfinal", OtherTuner)]
[NoEffectFlag("adalora_deltaT", OtherTuner)]
[NoEffectFlag("adalora_beta1", OtherTuner)]
[NoEffectFlag("adalora_beta2", OtherTuner)]
[NoEffectFlag("adalora_orth_reg_weight", OtherTuner)]
[NoEffectFlag("reft_layers", OtherTuner)]
[NoEffectFlag("reft_rank", OtherTuner)]
[NoEffectFlag("reft_intervention_type", OtherTuner)]
[NoEffectFlag("reft_args", OtherTuner)]
public sealed record LoraOptions
{
    private const string LoraShape = "Osprey's LoRA layers have no bias";
    private const string OtherTuner = "Osprey's tuners are LoRA, DoRA, rsLoRA, LoRA+ and full training; this one is not here";

    /// <summary>Rank r of A [r, in] and B [out, r] (<c>--lora_rank</c>, PEFT <c>r</c>).</summary>
    [Option("lora_rank", "LoRA rank r.", Common = true)]
    public int Rank { get; init; } = 8;

    /// <summary>Alpha: the update is scaled by alpha / r, or alpha / √r with <see cref="UseRslora"/> (<c>--lora_alpha</c>).</summary>
    [Option("lora_alpha", "LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with --use_rslora).", Common = true)]
    public double Alpha { get; init; } = 32;

    /// <summary>Dropout on the adapter's input while training (<c>--lora_dropout</c>).</summary>
    [Option("lora_dropout", "Dropout on the adapters' input.", Aliases = ["lora_dropout_p"])]
    public double Dropout { get; init; } = 0.05;

    /// <summary>
    /// Module names to adapt: a module matches when its path equals a name or ends with "." + name; the word
    /// <c>all-linear</c> means every linear layer except lm_head (<c>--target_modules</c>).
    /// </summary>
    [Option("target_modules", "Modules to adapt: names (q_proj v_proj ...) or all-linear.", Placeholder = "M...", Common = true)]
    public IReadOnlyList<string> TargetModules { get; init; } = ["all-linear"];

    /// <summary>A regular expression that must match a module's whole path; replaces <see cref="TargetModules"/> (<c>--target_regex</c>, PEFT's string target_modules).</summary>
    [Option("target_regex", "A regex matching whole module paths, instead of --target_modules.", Placeholder = "RE")]
    public string? TargetRegex { get; init; }

    /// <summary>Rank-stabilised scaling alpha / √r (<c>--use_rslora</c>).</summary>
    [Option("use_rslora", "Scale by alpha/sqrt(r) (rsLoRA).")]
    public bool UseRslora { get; init; }

    /// <summary>DoRA: a learned per-row magnitude times the normalised adapted weight (<c>--use_dora</c>).</summary>
    [Option("use_dora", "DoRA: weight-decomposed adapters with a trained magnitude per output row.")]
    public bool UseDora { get; init; }

    /// <summary>Modules trained in full and saved with the adapter, e.g. lm_head or embed_tokens (<c>--modules_to_save</c>).</summary>
    [Option("modules_to_save", "Modules trained in full and saved with the adapter (e.g. lm_head embed_tokens).", Placeholder = "M...")]
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];

    /// <summary>Per-module ranks (PEFT <c>rank_pattern</c>: a key matches a module path that ends with it, as a regex).</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module alphas (PEFT <c>alpha_pattern</c>).</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>Checks the values once at the entry point; the message names the flag.</summary>
    public void Validate()
    {
        if (Rank < 1) throw new OspreyException($"--lora_rank must be at least 1 (got {Rank}).");
        if (!(Alpha > 0)) throw new OspreyException($"--lora_alpha must be positive (got {Alpha}).");
        if (Dropout is < 0 or >= 1) throw new OspreyException($"--lora_dropout must be in [0, 1) (got {Dropout}).");
        if (TargetRegex is null && TargetModules.Count == 0) throw new OspreyException("--target_modules is empty; name modules (q_proj v_proj ...) or use all-linear.");
    }

    /// <summary>The rank and scaling for the module at <paramref name="path"/>, after rank/alpha patterns.</summary>
    public (int Rank, double Scaling) For(string path)
    {
        var rank = Rank;
        var alpha = Alpha;
        foreach (var (key, r) in RankPattern)
            if (LoraTargets.PatternMatches(key, path)) { rank = r; break; }
        foreach (var (key, a) in AlphaPattern)
            if (LoraTargets.PatternMatches(key, path)) { alpha = a; break; }
        return (rank, UseRslora ? alpha / Math.Sqrt(rank) : alpha / rank);
    }
}
