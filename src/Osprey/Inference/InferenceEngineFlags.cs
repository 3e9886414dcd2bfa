using Osprey.Options;

namespace Osprey.Inference;

/// <summary>
/// The settings of ms-swift's Python inference engines (vLLM, SGLang, LMDeploy; ms-swift's pre-3.7 vLLM names too),
/// accepted by infer, deploy, app and rlhf so their scripts run: Osprey generates with its own engine, so each prints a
/// notice and changes nothing. Included with <see cref="NoEffectFlagsFromAttribute"/>; a table only, never instantiated.
/// </summary>
[NoEffectFlag("vllm_gpu_memory_utilization", Engines)]
[NoEffectFlag("vllm_tensor_parallel_size", Engines)]
[NoEffectFlag("vllm_pipeline_parallel_size", Engines)]
[NoEffectFlag("vllm_data_parallel_size", Engines)]
[NoEffectFlag("vllm_enable_expert_parallel", Engines)]
[NoEffectFlag("vllm_max_num_seqs", Engines)]
[NoEffectFlag("vllm_max_model_len", Engines)]
[NoEffectFlag("vllm_disable_custom_all_reduce", Engines)]
[NoEffectFlag("vllm_enforce_eager", Engines)]
[NoEffectFlag("vllm_mm_processor_cache_gb", Engines)]
[NoEffectFlag("vllm_speculative_config", Engines)]
[NoEffectFlag("vllm_disable_cascade_attn", Engines)]
[NoEffectFlag("vllm_limit_mm_per_prompt", Engines)]
[NoEffectFlag("vllm_max_lora_rank", Engines)]
[NoEffectFlag("vllm_quantization", Engines)]
[NoEffectFlag("vllm_enable_prefix_caching", Engines)]
[NoEffectFlag("vllm_use_async_engine", Engines)]
[NoEffectFlag("vllm_reasoning_parser", Engines)]
[NoEffectFlag("vllm_engine_kwargs", Engines)]
[NoEffectFlag("vllm_enable_lora", Engines)]
[NoEffectFlag("gpu_memory_utilization", Engines)]
[NoEffectFlag("pipeline_parallel_size", Engines)]
[NoEffectFlag("max_num_seqs", Engines)]
[NoEffectFlag("enable_prefix_caching", Engines)]
[NoEffectFlag("limit_mm_per_prompt", Engines)]
[NoEffectFlag("max_lora_rank", Engines)]
[NoEffectFlag("sglang_tp_size", Engines)]
[NoEffectFlag("sglang_pp_size", Engines)]
[NoEffectFlag("sglang_dp_size", Engines)]
[NoEffectFlag("sglang_ep_size", Engines)]
[NoEffectFlag("sglang_enable_ep_moe", Engines)]
[NoEffectFlag("sglang_mem_fraction_static", Engines)]
[NoEffectFlag("sglang_context_length", Engines)]
[NoEffectFlag("sglang_disable_cuda_graph", Engines)]
[NoEffectFlag("sglang_quantization", Engines)]
[NoEffectFlag("sglang_kv_cache_dtype", Engines)]
[NoEffectFlag("sglang_enable_dp_attention", Engines)]
[NoEffectFlag("sglang_disable_custom_all_reduce", Engines)]
[NoEffectFlag("sglang_speculative_algorithm", Engines)]
[NoEffectFlag("sglang_speculative_num_steps", Engines)]
[NoEffectFlag("sglang_speculative_eagle_topk", Engines)]
[NoEffectFlag("sglang_speculative_num_draft_tokens", Engines)]
[NoEffectFlag("lmdeploy_tp", Engines)]
[NoEffectFlag("lmdeploy_session_len", Engines)]
[NoEffectFlag("lmdeploy_cache_max_entry_count", Engines)]
[NoEffectFlag("lmdeploy_quant_policy", Engines)]
[NoEffectFlag("lmdeploy_vision_batch_size", Engines)]
public static class InferenceEngineFlags
{
    private const string Engines = "Osprey generates with its own engine; vLLM, SGLang and LMDeploy are Python engines";
}
