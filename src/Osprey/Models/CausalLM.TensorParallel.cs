using Osprey.Distributed;
using Osprey.Io;
using static TorchSharp.torch;

namespace Osprey.Models;

// Tensor-parallel serving: each rank holds its shard of the attention and MLP projections (TensorParallelShard) and the
// decoder layers all-reduce their row-parallel outputs, so every rank ends each layer with the same hidden states.
public sealed partial class CausalLM
{
    /// <summary>The ranks this model is split over; null for a model on one device.</summary>
    internal TensorParallelGroup? TensorParallel { get; private init; }

    /// <summary>Which slice of each projection this rank holds; null for a whole model.</summary>
    internal TensorParallelShard? Shard { get; private init; }

    /// <summary>The whole model's shape (<see cref="Spec"/> is this rank's: a 1/N of the heads and the MLP width).</summary>
    internal DecoderSpec FullSpec => _fullSpec ?? Spec;

    readonly DecoderSpec? _fullSpec;

    /// <summary>
    /// A tensor-parallel worker never samples: its forward passes stop at the final norm's hidden states instead of
    /// computing logits that only rank 0 reads.
    /// </summary>
    internal bool SkipsLogits { get; set; }

    CausalLM(DecoderSpec full, TensorParallelShard shard, ScalarType dtype, Device device) : this(shard.ShardSpec(full), dtype, device, false, null, null)
    {
        _fullSpec = full;
        Shard = shard;
    }

    /// <summary>
    /// This rank's shard of <paramref name="directory"/> on the group's device. Dense text models only: a quantized
    /// folder, a vision-language model and a reward model are refused with the reason.
    /// </summary>
    static CausalLM LoadShard(string directory, TensorParallelGroup group, ScalarType dtype, ModelLoadOptions options)
    {
        var config = Path.Combine(directory, "config.json");
        var full = ModelRegistry.ReadSpec(directory);
        if (options.Quantization?.Open(directory, dtype, group.Device) is not null)
            throw new OspreyException($"{directory} is quantized, and --tensor_parallel_size splits dense weights only; serve it on one GPU or serve the unquantized model.");
        if (Qwen2Vl.VisionParts.Read(directory, full) is not null || Llava.LlavaFamily.ReadVision(directory) is not null)
            throw new OspreyException($"{directory} is a vision-language model; --tensor_parallel_size splits text models only, so serve it on one GPU.");
        TensorParallelShard.Check(full, group.WorldSize, config);
        var shard = new TensorParallelShard(group.Rank, group.WorldSize);
        using var checkpoint = SafetensorsCheckpoint.Open(directory);
        EnsureConfigFitsWeights(full, checkpoint, directory);
        if (ScoreLabels(directory, checkpoint) is not null)
            throw new OspreyException($"{directory} is a reward model (a score head); it scores, it cannot be served for chat or completions.");
        var lm = new CausalLM(full, shard, dtype, group.Device) { SourceDirectory = Path.GetFullPath(directory), TensorParallel = group };
        try
        {
            lm.LoadWeights(checkpoint);
            lm.model.UseAllReduce(group.AllReduce);
        }
        catch
        {
            lm.Dispose();
            throw;
        }
        return lm;
    }
}
