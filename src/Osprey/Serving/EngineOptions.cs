using Osprey.Inference;
namespace Osprey.Serving;

/// <summary>Limits of an <see cref="InferenceEngine"/>.</summary>
public sealed record EngineOptions
{
    /// <summary>Requests decoded together at most (--max_batch_size); each holds one KV-cache slot.</summary>
    public int MaxBatchSize { get; init; } = 32;
    /// <summary>Prompt plus output tokens per request at most (--max_model_len); null: the model's context, capped at 8192.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Requests waiting for a slot at most; more are refused with <see cref="EngineErrorKind.QueueFull"/>.</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>Prompt tokens prefilled between two decode steps at most, so running requests keep streaming while long prompts arrive.</summary>
    public int PrefillChunk { get; init; } = 2048;
    /// <summary>On a CUDA device, replay decode steps as CUDA graphs (false: --enforce_eager, every kernel launched one by one).</summary>
    public bool CudaGraphs { get; init; } = true;
    /// <summary>
    /// Pipelined decode: launch step n + 1 from step n's tokens while they are still on the device, and do step n's host
    /// work (detokenizing, stop checks, streaming) while the device runs step n + 1; a request that ends costs one
    /// discarded step. Rows with a response format take part (their masks are computed while the forward pass runs).
    /// Only where every running request allows it (no logprobs, text model, one GPU, no per-request adapters); other
    /// steps run as before. Null: the environment variable OSPREY_ASYNC_DECODE=1
    /// turns it on (off by default until measured on a GPU).
    /// </summary>
    public bool? AsyncDecode { get; init; }

    /// <summary>
    /// Build the tokenizer's structured-output tables and its most used whole-vocabulary masks (strings near their
    /// maxLength, json_object's keys) on a background thread as the engine starts (about 1-3 s of one core), so the
    /// first structured requests do not pay for them mid-decode; null: on when the model is on a CUDA device.
    /// </summary>
    public bool? PrewarmStructuredOutputs { get; init; }
}
