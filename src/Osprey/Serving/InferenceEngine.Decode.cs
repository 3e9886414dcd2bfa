using Osprey.Runtime;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Serving;

// The decode step: one forward pass over the dense block of running rows, then a token for each.
public sealed partial class InferenceEngine
{
    /// <summary>Decode steps run so far (for per-step figures of a profile).</summary>
    internal long DecodeSteps { get; private set; }

    void DecodeStep()
    {
        using var scope = NewDisposeScope();
        var n = _active.Count;
        var device = Model.Device;
        PhaseTimer.Mark(device, "scheduler between steps (queue, cancels, prefill checks)");
        DecodeSteps++;
        var hostIds = _active.Select(s => (long)s.Last).ToArray();
        var hostPositions = _active.Select(s => (long)s.Length).ToArray();
        Tensor ids() => tensor(hostIds, [n, 1], device: device);
        Tensor positions() => tensor(hostPositions, [n], device: device);
        // Rows after images (vision-language models) take rotary positions shifted by their M-RoPE delta.
        var hostRope = Model.IsVisionLanguage ? _active.Select(s => s.Length + s.RopeDelta).ToArray() : null;
        var longest = _active.Max(s => s.Length) + 1;
        // Rows of one length (always so for a request alone) attend to exactly their positions without a mask;
        // otherwise every row reads a common length, rounded up so the shapes change rarely, under a mask.
        var uniform = _active.All(s => s.Length == _active[0].Length);
        var keys = uniform ? longest : Math.Min(MaxModelLen, (longest + KeyBlock - 1) / KeyBlock * KeyBlock);
        SelectAdapters(_active.Select(s => s.Adapter).ToArray());
        // Graphs are off under tensor parallelism, so this step runs eagerly below on every rank.
        Mirror(TensorParallelStep.Decode(hostIds, hostPositions, keys, uniform));
        var logits = DecodeByGraph(hostIds, hostPositions, hostRope, n, longest)
            ?? Model.DecodeSlots(ids(), positions(), _pool, keys, uniform, hostRope is null ? null : tensor(hostRope, [n], device: device));
        PhaseTimer.Mark(device, "decode step on the device");
        foreach (var s in _active) s.Length++;
        var picks = Pick(logits, _active, 0);
        PhaseTimer.Mark(device, "sampling, tokens to the host");
        var finished = new List<int>();
        for (var row = 0; row < n; row++)
            if (Emit(_active[row], picks[row])) finished.Add(row);
        for (var i = finished.Count - 1; i >= 0; i--) Remove(finished[i]);
        PhaseTimer.Mark(device, "emit (detokenize, stop checks, stream writes, row compaction)");
    }

    /// <summary>Tells the model which LoRA adapter each row of the next forward passes uses (0 = base).</summary>
    void SelectAdapters(IReadOnlyList<int> perRow)
    {
        if (!Model.HasServingAdapters) return;
        Model.SetRowAdapters(perRow.All(a => a == 0) ? null : perRow);
    }
}
