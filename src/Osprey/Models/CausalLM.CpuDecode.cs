using Osprey.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

public sealed partial class CausalLM
{
    /// <summary>
    /// OSPREY_CPU_DECODE=0 turns the managed CPU decoder off (<see cref="CpuDecoder"/>): every step then runs through
    /// libtorch. On by default: batch-1 decode steps on the CPU of the models it takes run there.
    /// </summary>
    static readonly bool s_cpuDecode = Environment.GetEnvironmentVariable("OSPREY_CPU_DECODE") != "0";

    /// <summary>Whether one-sequence decode steps on the CPU may run in the managed decoder (default: unless OSPREY_CPU_DECODE=0); tests set it per model.</summary>
    internal bool UseCpuDecoder { get; set; } = s_cpuDecode;

    CpuDecoder? _cpuDecoder;
    string? _cpuDecodeRefusal;
    bool _cpuDecodeTried;

    /// <summary>Why this model's decode steps do not run in the managed CPU decoder (null when they do, or before the first step asked).</summary>
    internal string? CpuDecodeRefusal => _cpuDecodeRefusal;

    /// <summary>Decode steps the managed CPU decoder ran (tests and benchmarks check it was used).</summary>
    internal long CpuDecodeSteps { get; private set; }

    /// <summary>
    /// The logits of one new token [1, 1] of a one-row cache from the managed decoder, or null when the step must take
    /// the libtorch path (another device, autograd, a batch, a serving slot step, padding, a model or weight format it does
    /// not take, an adapter attached since).
    /// </summary>
    Tensor? TryCpuDecode(Tensor ids, Tensor? keyValid, Tensor? positions, KvCache? cache, bool lastOnly)
    {
        if (cache is null || !lastOnly || keyValid is not null || ids.shape is not [1, 1] || cache.Batch != 1 || cache.InSlotStep) return null;
        if (CpuDecoderFor() is not { } decoder) return null;
        var token = ids.item<long>();
        var position = positions is null ? cache.Length : positions.item<long>();
        CpuDecodeSteps++;
        var logits = decoder.Step(token, position, (int)cache.Length, cache);
        cache.Advance(1);
        return logits;
    }

    /// <summary>
    /// A serving slot step of one request alone (the engine's decode with a single running row, <paramref name="uniform"/>:
    /// its length is <paramref name="keys"/> − 1) through the managed decoder: logits [1, vocab], or null for the libtorch path.
    /// </summary>
    Tensor? TryCpuDecodeSlot(Tensor ids, Tensor positions, KvCache cache, long keys, bool uniform, Tensor? ropePositions)
    {
        if (ids.shape is not [1, 1] || !uniform || ropePositions is not null || cache.InSlotStep) return null;
        if (CpuDecoderFor() is not { } decoder) return null;
        var position = positions.item<long>();
        if (position != keys - 1) return null;
        CpuDecodeSteps++;
        return decoder.Step(ids.item<long>(), position, (int)position, cache).view(1, -1);
    }

    /// <summary>The managed decoder when this step may use it (CPU, no autograd, a text model it takes, nothing attached since), else null.</summary>
    CpuDecoder? CpuDecoderFor()
    {
        if (!UseCpuDecoder || Device.type != DeviceType.CPU || is_grad_enabled()) return null;
        if (IsRewardModel || SkipsLogits || Shard is not null || Vision is not null || _llava is not null) return null;
        // Weights moved to new storage (training's flat buffers, a base dequantized) or the int8 head switched: build it again.
        if (_cpuDecoder is { } built && !built.StillValid(UseInt8Head ? _int8Head?.Codes : null)) DisposeCpuDecoder();
        if (!_cpuDecodeTried)
        {
            _cpuDecodeTried = true;
            _cpuDecodeRefusal = CpuDecoder.TryCreate(this, model, lm_head, Int8HeadForDecoder, get_num_threads(), out _cpuDecoder);
        }
        return _cpuDecoder is { } d && d.Current() ? d : null;
    }

    void DisposeCpuDecoder()
    {
        _cpuDecoder?.Dispose();
        _cpuDecoder = null;
        _cpuDecodeTried = false;
    }
}
