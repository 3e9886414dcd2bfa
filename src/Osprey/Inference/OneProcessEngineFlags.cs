using Osprey.Options;

namespace Osprey.Inference;

/// <summary>
/// ms-swift's --tensor_parallel_size where Osprey generates in one process (infer, rlhf's rollouts): a notice, no effect.
/// osprey deploy, app and benchmark --concurrency take it for real (Serving.TensorParallelOptions). A table only.
/// </summary>
[NoEffectFlag("tensor_parallel_size", "this command generates in one process; osprey deploy, app and benchmark --concurrency split a model over GPUs with it")]
public static class OneProcessEngineFlags;
