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
        if (!UseCpuDecoder || cache is null || !lastOnly || keyValid is not null || Device.type != DeviceType.CPU) return null;
        if (ids.shape is not [1, 1] || cache.Batch != 1 || cache.InSlotStep || is_grad_enabled()) return null;
        if (IsRewardModel || SkipsLogits || Shard is not null || Vision is not null || _llava is not null) return null;
        if (!_cpuDecodeTried)
        {
            _cpuDecodeTried = true;
            _cpuDecodeRefusal = CpuDecoder.TryCreate(this, model, lm_head, Int8HeadForDecoder, get_num_threads(), out _cpuDecoder);
        }
        if (_cpuDecoder is null || !_cpuDecoder.Current()) return null;
        var token = ids.item<long>();
        var position = positions is null ? cache.Length : positions.item<long>();
        CpuDecodeSteps++;
        return _cpuDecoder.Step(token, position, cache);
    }

    void DisposeCpuDecoder()
    {
        _cpuDecoder?.Dispose();
        _cpuDecoder = null;
        _cpuDecodeTried = false;
    }
}
