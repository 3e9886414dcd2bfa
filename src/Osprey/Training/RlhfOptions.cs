using Osprey.Options;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;

namespace Osprey.Training;

/// <summary>
/// Everything <c>osprey rlhf</c> takes: the preference method and its loss, the reference model, and every fine-tuning
/// option. <see cref="FineTuning.Rlhf"/> runs it.
/// </summary>
// ms-swift's RLHF arguments for methods or variants Osprey does not have (docs/ms-swift-compat.md).
[NoEffectFlagsFrom(typeof(Inference.InferenceEngineFlags))]
[NoEffectFlagsFrom(typeof(Inference.OneProcessEngineFlags))]
[NoEffectFlag("ref_model_type", "Osprey reads the reference's architecture from its config.json")]
[NoEffectFlag("ref_model_revision", "Osprey loads the revision found in the cache or downloaded from the default branch")]
[NoEffectFlag("ld_alpha", NotYet)]
[NoEffectFlag("discopop_tau", NotYet)]
[NoEffectFlag("loss_weights", NotYet)]
[NoEffectFlag("lmbda", OnlinePolicy)]
[NoEffectFlag("sft_alpha", OnlinePolicy)]
[NoEffectFlag("seq_kd", OnlinePolicy)]
[NoEffectFlag("offload_teacher_model", OnlinePolicy)]
[NoEffectFlag("reward_adapters", OnlinePolicy)]
[NoEffectFlag("reward_model_type", OnlinePolicy)]
[NoEffectFlag("reward_model_revision", OnlinePolicy)]
[NoEffectFlag("teacher_model", OnlinePolicy)]
[NoEffectFlag("teacher_adapters", OnlinePolicy)]
[NoEffectFlag("teacher_model_type", OnlinePolicy)]
[NoEffectFlag("teacher_model_revision", OnlinePolicy)]
[NoEffectFlag("teacher_deepspeed", OnlinePolicy)]
[NoEffectFlag("num_sample_generations", OnlinePolicy)]
[NoEffectFlag("generation_batch_size", OnlinePolicy)]
[NoEffectFlag("ds3_gather_for_generation", OnlinePolicy)]
[NoEffectFlag("reward_model_plugin", OnlinePolicy)]
[NoEffectFlag("use_vllm", "GRPO and PPO rollouts always run on Osprey's in-process serving engine over the live policy weights (docs/grpo.md); --rollout_memory_fraction budgets its KV cache")]
[NoEffectFlag("vllm_mode", "rollouts run in the training process (ms-swift's colocate mode) on Osprey's own engine; there is no vLLM server")]
[NoEffectFlag("vllm_server_host", OnlinePolicy)]
[NoEffectFlag("vllm_server_port", OnlinePolicy)]
[NoEffectFlag("vllm_server_base_url", OnlinePolicy)]
[NoEffectFlag("vllm_server_timeout", OnlinePolicy)]
[NoEffectFlag("vllm_server_pass_dataset", OnlinePolicy)]
[NoEffectFlag("async_generate", OnlinePolicy)]
[NoEffectFlag("sleep_level", OnlinePolicy)]
[NoEffectFlag("offload_optimizer", OnlinePolicy)]
[NoEffectFlag("offload_model", OnlinePolicy)]
[NoEffectFlag("completion_length_limit_scope", OnlinePolicy)]
[NoEffectFlag("tau_pos", OnlinePolicy)]
[NoEffectFlag("tau_neg", OnlinePolicy)]
[NoEffectFlag("delta", OnlinePolicy)]
[NoEffectFlag("advantage_estimator", OnlinePolicy)]
[NoEffectFlag("kl_in_reward", OnlinePolicy)]
[NoEffectFlag("sync_ref_model", OnlinePolicy)]
[NoEffectFlag("ref_model_mixup_alpha", OnlinePolicy)]
[NoEffectFlag("ref_model_sync_steps", OnlinePolicy)]
[NoEffectFlag("move_model_batches", OnlinePolicy)]
[NoEffectFlag("multi_turn_scheduler", OnlinePolicy)]
[NoEffectFlag("max_turns", OnlinePolicy)]
[NoEffectFlag("top_entropy_quantile", OnlinePolicy)]
[NoEffectFlag("log_entropy", OnlinePolicy)]
[NoEffectFlag("rollout_importance_sampling_mode", OnlinePolicy)]
[NoEffectFlag("rollout_importance_sampling_threshold", OnlinePolicy)]
public sealed record RlhfOptions
{
    private const string NotYet = "this DPO variant is not in Osprey yet";
    private const string OnlinePolicy = "it belongs to PPO, GKD or a GRPO feature Osprey does not have; --rlhf_type lists what it trains";

    /// <summary>The method (<c>--rlhf_type</c>) and its loss hyperparameters.</summary>
    [OptionGroup]
    public PreferenceLossOptions Loss { get; init; } = new();

    /// <summary>A separate reference model (DPO, KTO).</summary>
    [Option("ref_model", "DPO/KTO reference model (default: LoRA uses the base weights with adapters off; full training loads the base model a second time).", Placeholder = "DIR|ID")]
    public string? ReferenceModel { get; init; }

    /// <summary>LoRA adapters merged into the reference.</summary>
    [Option("ref_adapters", "LoRA adapters merged into the reference (a separate frozen copy), e.g. the SFT adapter.", Placeholder = "DIR...")]
    public IReadOnlyList<string> ReferenceAdapters { get; init; } = [];

    /// <summary>DPO: reference scores once before training.</summary>
    [Option("precompute_ref_log_probs", "DPO: score all pairs with the reference once before training, then free a separate reference copy.")]
    public bool PrecomputeReferenceLogProbs { get; init; }

    /// <summary>GRPO's rollouts, clipping, rewards and schedule (<c>--rlhf_type grpo</c>).</summary>
    [OptionGroup]
    public Grpo.GrpoOptions Grpo { get; init; } = new();

    /// <summary>PPO's KL penalty, GAE and clipped losses (<c>--rlhf_type ppo</c>).</summary>
    [OptionGroup]
    public Ppo.PpoOptions Ppo { get; init; } = new();

    /// <summary>The model, data, training and output options shared with <c>osprey sft</c>.</summary>
    [OptionGroup]
    public SftOptions FineTune { get; init; } = new();

    /// <summary>Checks the preference-specific options, naming the flag and the fix.</summary>
    /// <exception cref="OspreyException">A value does not fit the method.</exception>
    public void Validate()
    {
        var type = Loss.RlhfType;
        if (PrecomputeReferenceLogProbs && type != RlhfType.Dpo)
            throw new OspreyException($"--precompute_ref_log_probs applies to dpo only: {(type == RlhfType.Kto ? "KTO's KL estimate pairs examples within each micro-batch, so its reference scores cannot be computed ahead" : $"{OptionSet.ChoiceText(type)} uses no reference model")}; drop the flag.");
        foreach (var a in ReferenceAdapters)
            if (!PeftAdapter.IsAdapter(a)) throw new OspreyException($"--ref_adapters {a} has no adapter_config.json; pass LoRA checkpoint folders or PEFT adapters.");
        Loss.Validate();
        if (type == RlhfType.Grpo) Grpo.Validate();
        if (type == RlhfType.Ppo)
        {
            if (Grpo.RewardFuncs.Count == 0 && Grpo.RewardModel is null && Grpo.RewardUrl is null)
                throw new OspreyException("--rlhf_type ppo needs a reward: --reward_model (a *ForSequenceClassification folder, e.g. from --rlhf_type rm), --reward_funcs or --reward_url.");
            Grpo.Validate();
            Ppo.Validate();
        }
    }
}
