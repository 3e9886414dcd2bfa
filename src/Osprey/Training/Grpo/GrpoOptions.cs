using System.Globalization;
using Osprey.Options;

namespace Osprey.Training.Grpo;

/// <summary>
/// The GRPO flags of <c>osprey rlhf --rlhf_type grpo</c>, with ms-swift's names and defaults: rollouts (how many per
/// prompt, how long, how sampled), the clipped surrogate and its variants, reward functions and their parameters, and
/// how often a generation batch is made and reused. <c>--beta</c> and <c>--loss_type</c> live with the other losses
/// (<see cref="Preference.PreferenceLossOptions"/>).
/// </summary>
public sealed record GrpoOptions
{
    /// <summary>G: completions sampled per prompt.</summary>
    [Option("num_generations", "GRPO: completions sampled per prompt (G); the generation batch must be a multiple of it.")]
    public int NumGenerations { get; init; } = 8;

    /// <summary>Most tokens of one completion.</summary>
    [Option("max_completion_length", "GRPO: most tokens generated per completion.")]
    public int MaxCompletionLength { get; init; } = 512;

    /// <summary>Rollout sampling temperature.</summary>
    [Option("temperature", "GRPO: rollout sampling temperature.")]
    public double Temperature { get; init; } = 0.9;

    /// <summary>Rollout nucleus threshold.</summary>
    [Option("top_p", "GRPO: rollout nucleus sampling threshold in (0, 1].")]
    public double TopP { get; init; } = 0.9;

    /// <summary>Rollout top-k (0: all tokens).</summary>
    [Option("top_k", "GRPO: keep the N most likely tokens when sampling rollouts (0 = all).")]
    public int TopK { get; init; } = 50;

    /// <summary>Rollout repetition penalty.</summary>
    [Option("repetition_penalty", "GRPO: rollout repetition penalty (1 = off).")]
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Share of the GPU's memory the rollout engine's KV cache may take (it shares the policy's weights, so needs nothing else).</summary>
    [Option("rollout_memory_fraction", "GRPO/PPO: share of the GPU's memory the in-process rollout engine's KV cache may take (it shares the policy's weights); it never takes more than the generation batch needs. ms-swift's --vllm_gpu_memory_utilization sets it too.",
        Aliases = ["vllm_gpu_memory_utilization"])]
    public double RolloutMemoryFraction { get; init; } = 0.3;

    /// <summary>With LoRA, rollouts read a merged copy of the adapted weights (false: the engine applies the adapters unmerged).</summary>
    [Option("rollout_merge_lora", "GRPO/PPO with LoRA: the rollout engine reads a copy of the adapted weights with the adapters merged in, recomputed in place before each generation batch (one stacked matrix multiply per projection again; costs the adapted weights' memory once); false applies the adapters unmerged. DoRA and QLoRA always run unmerged.")]
    public bool RolloutMergeLora { get; init; } = true;

    /// <summary>ε: the lower clip of the importance ratio (and the upper one unless <see cref="EpsilonHigh"/>).</summary>
    [Option("epsilon", "GRPO: clip the importance ratio to [1 - epsilon, 1 + epsilon_high].")]
    public double Epsilon { get; init; } = 0.2;

    /// <summary>The upper clip (DAPO's clip-higher, e.g. 0.28); null uses <see cref="Epsilon"/>.</summary>
    [Option("epsilon_high", "GRPO: the upper clip (DAPO recommends 0.28).", DefaultText = "epsilon")]
    public double? EpsilonHigh { get; init; }

    /// <summary>Token ratios, or one ratio per completion (GSPO).</summary>
    [Option("importance_sampling_level", "GRPO: token ratios, or sequence (GSPO: one ratio per completion from its mean token log-ratio).")]
    public ImportanceSamplingLevel ImportanceSamplingLevel { get; init; } = ImportanceSamplingLevel.Token;

    /// <summary>How group-centred rewards are scaled into advantages.</summary>
    [Option("scale_rewards", "GRPO: divide centred rewards by the std of the group, of the batch, or none (Dr. GRPO).")]
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;

    /// <summary>μ: optimisation passes over each generation batch.</summary>
    [Option("num_iterations", "GRPO: passes over each generation batch (μ); above 1 the ratios are taken against the rollout policy.")]
    public int NumIterations { get; init; } = 1;

    /// <summary>Micro-batches one generation batch feeds; null: --gradient_accumulation_steps (one generation per optimizer step).</summary>
    [Option("steps_per_generation", "GRPO: micro-batches per generation batch (generation batch = per_device_train_batch_size x this).", DefaultText = "gradient_accumulation_steps")]
    public int? StepsPerGeneration { get; init; }

    /// <summary>DAPO's dynamic sampling: groups whose rewards are all equal are replaced by new prompts' groups.</summary>
    [Option("dynamic_sample", "GRPO: replace groups whose rewards are all equal with new prompts' groups (DAPO).")]
    public bool DynamicSample { get; init; }

    /// <summary>Most extra generation rounds dynamic sampling makes per batch.</summary>
    [Option("max_resample_times", "GRPO: most extra generation rounds of --dynamic_sample per batch.")]
    public int MaxResampleTimes { get; init; } = 3;

    /// <summary>DAPO's overlong filtering: truncated completions get no loss.</summary>
    [Option("overlong_filter", "GRPO: completions cut at --max_completion_length get no loss (DAPO).")]
    public bool OverlongFilter { get; init; }

    /// <summary>Reward functions by name: built-ins (accuracy, format, cosine, repetition, soft_overlong) or plugin names.</summary>
    [Option("reward_funcs", "GRPO: reward functions: accuracy format cosine repetition soft_overlong, or names from --external_plugins.", Placeholder = "NAME...")]
    public IReadOnlyList<string> RewardFuncs { get; init; } = [];

    /// <summary>One weight per reward (functions, then --reward_url, then --reward_model); default 1 each.</summary>
    [Option("reward_weights", "GRPO: one weight per reward (functions, then --reward_url, then --reward_model); default 1 each.", Placeholder = "W...")]
    public IReadOnlyList<string> RewardWeights { get; init; } = [];

    /// <summary>A reward model folder (<c>*ForSequenceClassification</c>, e.g. from <c>--rlhf_type rm</c>).</summary>
    [Option("reward_model", "GRPO: a reward model (a *ForSequenceClassification folder, e.g. osprey rlhf --rlhf_type rm output) scoring each completion.", Placeholder = "DIR|ID")]
    public string? RewardModel { get; init; }

    /// <summary>An HTTP endpoint that scores completions (POST JSON, see docs/grpo.md).</summary>
    [Option("reward_url", "GRPO: POST each batch of completions to this URL as JSON and read {\"rewards\": [...]} back (docs/grpo.md).", Placeholder = "URL")]
    public string? RewardUrl { get; init; }

    /// <summary>.NET assemblies holding <see cref="IRewardFunction"/> implementations.</summary>
    [Option("external_plugins", "GRPO: .NET assemblies with Osprey.Training.Grpo.IRewardFunction implementations, named in --reward_funcs.", Placeholder = "DLL...")]
    public IReadOnlyList<string> ExternalPlugins { get; init; } = [];

    /// <summary>Write every rollout (prompt, completion, rewards, advantage) to completions.jsonl.</summary>
    [Option("log_completions", "GRPO: write every rollout (prompt, completion, rewards, advantage) to <run>/completions.jsonl.")]
    public bool LogCompletions { get; init; }

    /// <summary>Cosine reward: value of a wrong answer of length 0.</summary>
    [Option("cosine_min_len_value_wrong", "Cosine reward: a wrong answer's reward at length 0.")]
    public double CosineMinLenValueWrong { get; init; } = -0.5;

    /// <summary>Cosine reward: value of a wrong answer at the longest length.</summary>
    [Option("cosine_max_len_value_wrong", "Cosine reward: a wrong answer's reward at --cosine_max_len.")]
    public double CosineMaxLenValueWrong { get; init; }

    /// <summary>Cosine reward: value of a right answer of length 0.</summary>
    [Option("cosine_min_len_value_correct", "Cosine reward: a right answer's reward at length 0.")]
    public double CosineMinLenValueCorrect { get; init; } = 1.0;

    /// <summary>Cosine reward: value of a right answer at the longest length.</summary>
    [Option("cosine_max_len_value_correct", "Cosine reward: a right answer's reward at --cosine_max_len.")]
    public double CosineMaxLenValueCorrect { get; init; } = 0.5;

    /// <summary>Cosine reward: the length at which the curve ends; null: --max_completion_length.</summary>
    [Option("cosine_max_len", "Cosine reward: the length (tokens) where the curve ends.", DefaultText = "max_completion_length")]
    public int? CosineMaxLen { get; init; }

    /// <summary>Repetition reward: n-gram size.</summary>
    [Option("repetition_n_grams", "Repetition reward: n-gram size (words).")]
    public int RepetitionNGrams { get; init; } = 3;

    /// <summary>Repetition reward: the penalty of a completion that is all repeats.</summary>
    [Option("repetition_max_penalty", "Repetition reward: the penalty when every n-gram repeats (negative).")]
    public double RepetitionMaxPenalty { get; init; } = -1.0;

    /// <summary>Soft overlong reward: the length beyond which nothing is allowed; null: --max_completion_length.</summary>
    [Option("soft_max_length", "Soft overlong reward: the hard length L_max (tokens).", DefaultText = "max_completion_length")]
    public int? SoftMaxLength { get; init; }

    /// <summary>Soft overlong reward: the band below <see cref="SoftMaxLength"/> where the penalty ramps up.</summary>
    [Option("soft_cache_length", "Soft overlong reward: the band (tokens) below --soft_max_length where the penalty ramps to -1.")]
    public int? SoftCacheLength { get; init; }

    /// <summary>The upper clip as used.</summary>
    public double ResolvedEpsilonHigh => EpsilonHigh ?? Epsilon;

    /// <summary>Parsed <see cref="RewardWeights"/>; empty when not given.</summary>
    public IReadOnlyList<double> ParsedRewardWeights => RewardWeights.Select(w =>
        double.TryParse(w, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v : throw new OspreyException($"--reward_weights holds '{w}', which is not a number; give one number per reward.")).ToList();

    /// <summary>Checks ranges, naming the flag and the fix.</summary>
    /// <exception cref="OspreyException">A value is out of range.</exception>
    public void Validate()
    {
        if (NumGenerations < 2) throw new OspreyException($"--num_generations must be 2 or more: advantages compare completions of one prompt (got {NumGenerations}).");
        if (MaxCompletionLength < 1) throw new OspreyException($"--max_completion_length must be 1 or more (got {MaxCompletionLength}).");
        if (!(Temperature > 0) || !double.IsFinite(Temperature)) throw new OspreyException($"--temperature must be above 0 for GRPO rollouts (got {Temperature}); greedy rollouts would all be the same.");
        if (TopP is <= 0 or > 1) throw new OspreyException($"--top_p must be in (0, 1] (got {TopP}).");
        if (TopK < 0) throw new OspreyException($"--top_k must be 0 (off) or more (got {TopK}).");
        if (!(RepetitionPenalty > 0)) throw new OspreyException($"--repetition_penalty must be positive (got {RepetitionPenalty}).");
        if (!(RolloutMemoryFraction > 0 && RolloutMemoryFraction <= 1)) throw new OspreyException($"--rollout_memory_fraction must be in (0, 1] (got {RolloutMemoryFraction}); it is the share of the GPU's memory for the rollout engine's KV cache, e.g. 0.3.");
        if (!(Epsilon > 0 && Epsilon < 1)) throw new OspreyException($"--epsilon must be in (0, 1) (got {Epsilon}).");
        if (!(ResolvedEpsilonHigh > 0) || !double.IsFinite(ResolvedEpsilonHigh)) throw new OspreyException($"--epsilon_high must be positive (got {EpsilonHigh}).");
        if (NumIterations < 1) throw new OspreyException($"--num_iterations must be 1 or more (got {NumIterations}).");
        if (StepsPerGeneration is < 1) throw new OspreyException($"--steps_per_generation must be 1 or more (got {StepsPerGeneration}).");
        if (MaxResampleTimes < 0) throw new OspreyException($"--max_resample_times must be 0 or more (got {MaxResampleTimes}).");
        if (RepetitionNGrams < 1) throw new OspreyException($"--repetition_n_grams must be 1 or more (got {RepetitionNGrams}).");
        if (RepetitionMaxPenalty > 0) throw new OspreyException($"--repetition_max_penalty must be 0 or less (got {RepetitionMaxPenalty}).");
        if (CosineMaxLen is < 1) throw new OspreyException($"--cosine_max_len must be 1 or more (got {CosineMaxLen}).");
        if (SoftCacheLength is < 1) throw new OspreyException($"--soft_cache_length must be 1 or more (got {SoftCacheLength}).");
        if (SoftCacheLength is int c && c >= (SoftMaxLength ?? MaxCompletionLength))
            throw new OspreyException($"--soft_cache_length {c} must be below --soft_max_length {SoftMaxLength ?? MaxCompletionLength}.");
        if (RewardFuncs.Count == 0 && RewardModel is null && RewardUrl is null)
            throw new OspreyException("--rlhf_type grpo needs a reward: --reward_funcs (accuracy format cosine repetition soft_overlong or a plugin's names), --reward_url or --reward_model.");
        var rewards = RewardFuncs.Count + (RewardUrl is null ? 0 : 1) + (RewardModel is null ? 0 : 1);
        if (RewardWeights.Count > 0 && RewardWeights.Count != rewards)
            throw new OspreyException($"--reward_weights has {RewardWeights.Count} values for {rewards} rewards; give one weight per reward function (then --reward_url, then --reward_model).");
        _ = ParsedRewardWeights;
        foreach (var dll in ExternalPlugins)
            if (!File.Exists(dll)) throw new OspreyException($"--external_plugins {dll} does not exist; pass the path of a .NET assembly (.dll) with IRewardFunction implementations.");
        if (RewardUrl is not null && !(Uri.TryCreate(RewardUrl, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
            throw new OspreyException($"--reward_url {RewardUrl} is not an http(s) URL; give e.g. http://127.0.0.1:8000/reward.");
    }
}
