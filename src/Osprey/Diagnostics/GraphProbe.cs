using System.Diagnostics;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Diagnostics;

/// <summary>
/// Checks CUDA graph capture and replay from .NET: on a toy op chain, and on one static-shape greedy decode step of
/// a model (the serving engine's step), timing eager against replayed decoding. Needs a CUDA device; callers check
/// <see cref="CudaGraph.IsSupported"/> first. <c>osprey graph-probe</c> prints what it returns.
/// </summary>
public static class GraphProbe
{
    /// <summary>
    /// Captures a 7-op chain on a 64×64 input, replays it on 3 fresh inputs against eager runs, and times 1000 of
    /// each: the smallest check that capture and replay work from .NET on this machine's CUDA device 0.
    /// </summary>
    public static ToyGraphProbeResult Toy()
    {
        var dev = new Device(DeviceType.CUDA, 0);
        using var x = randn(64, 64, device: dev);
        using var w = randn(64, 64, device: dev);
        Tensor? output = null;
        Tensor Chain(Tensor a) => ((a * 2.0 + 1.0).relu().matmul(w).tanh() + a).sum(1);
        using var graph = new CudaGraph();
        graph.Capture(() =>
        {
            output?.Dispose();
            output = Chain(x);
        });
        double worst = 0;
        for (int trial = 0; trial < 3; trial++)
        {
            using var fresh = randn(64, 64, device: dev);
            x.copy_(fresh);
            graph.Replay();
            using var expected = Chain(fresh);
            worst = Math.Max(worst, (output! - expected).abs().max().item<float>());
        }
        torch.cuda.synchronize(dev);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 1000; i++) graph.Replay();
        torch.cuda.synchronize(dev);
        var replayUs = clock.Elapsed.TotalMilliseconds; // 1000 replays → µs each
        clock.Restart();
        for (int i = 0; i < 1000; i++) { using var s = NewDisposeScope(); Chain(x); }
        torch.cuda.synchronize(dev);
        var eagerUs = clock.Elapsed.TotalMilliseconds;
        output?.Dispose();
        return new ToyGraphProbeResult(graph.CaptureMilliseconds, worst, eagerUs, replayUs);
    }

    /// <summary>
    /// Greedy-decodes <paramref name="newTokens"/> tokens after a random <paramref name="promptLength"/>-token prompt
    /// for <paramref name="batch"/> rows three ways: the eager reference path, the serving engine's static-shape slot
    /// step run eagerly, and that step captured once in a CUDA graph and replayed. Compares their tokens, and
    /// teacher-forces the static step with the reference tokens to tell a real difference from a bf16 near-tie.
    /// </summary>
    public static DecodeGraphProbeResult Decode(CausalLM model, int batch, int promptLength, int newTokens)
    {
        var dev = model.Device;
        using var _ = no_grad();
        var rng = new Random(1234 + batch);
        var host = new long[batch * promptLength];
        for (int i = 0; i < host.Length; i++) host[i] = rng.Next(3, model.Spec.VocabSize);
        using var prompt = tensor(host, [batch, promptLength], device: dev);
        long capacity = (promptLength + newTokens + 15) / 16 * 16;
        int steps = newTokens - 1;

        // Reference: the existing eager decode path (growing cache view, no mask).
        using var refTokens = zeros(batch, newTokens, dtype: ScalarType.Int64, device: dev);
        double refMs;
        using (var cache = model.NewCache(batch, capacity))
        {
            Tensor next;
            using (var s = NewDisposeScope())
                next = model.Forward(prompt, null, null, cache, lastOnly: true).argmax(-1).MoveToOuterDisposeScope();
            refTokens.narrow(1, 0, 1).copy_(next);
            torch.cuda.synchronize(dev);
            var clock = Stopwatch.StartNew();
            for (int i = 1; i < newTokens; i++)
            {
                using var s = NewDisposeScope();
                var n = model.Forward(next, null, null, cache, lastOnly: true).argmax(-1);
                refTokens.narrow(1, i, 1).copy_(n);
                next.Dispose();
                next = n.MoveToOuterDisposeScope();
            }
            torch.cuda.synchronize(dev);
            refMs = clock.Elapsed.TotalMilliseconds / steps;
            next.Dispose();
        }

        // Static-shape step: the state lives in device tensors the step updates itself.
        using var kv = model.NewCache(batch, capacity);
        Tensor first;
        using (var s = NewDisposeScope())
            first = model.Forward(prompt, null, null, kv, lastOnly: true).argmax(-1).MoveToOuterDisposeScope();
        using var ids = first.clone();
        using var positions = full(batch, promptLength, dtype: ScalarType.Int64, device: dev);
        using var slot = full(1, promptLength, dtype: ScalarType.Int64, device: dev);
        using var history = zeros(batch, capacity, dtype: ScalarType.Int64, device: dev);
        void Step()
        {
            using var s = NewDisposeScope();
            // The serving engine's step: every row at its own position, attending over the whole capacity under a mask.
            var next = model.DecodeSlots(ids, positions, kv, capacity).argmax(-1, keepdim: true); // [B, 1]
            history.index_copy_(1, slot, next);
            ids.copy_(next);
            positions.add_(1);
            slot.add_(1);
        }
        void Reset()
        {
            ids.copy_(first);
            positions.fill_(promptLength);
            slot.fill_(promptLength);
            history.zero_();
        }

        Reset();
        torch.cuda.synchronize(dev);
        var c = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) Step();
        torch.cuda.synchronize(dev);
        var staticMs = c.Elapsed.TotalMilliseconds / steps;
        using var staticTokens = history.narrow(1, promptLength, steps).clone();

        GC.Collect();
        GC.WaitForPendingFinalizers();
        torch.cuda.synchronize(dev);
        var before = Nvml.UsedBytes(Math.Max(dev.index, 0));
        using var graph = new CudaGraph(Math.Max(dev.index, 0));
        Reset(); // the warm-up runs inside Capture advance the slot too; start them from the prompt end
        graph.Capture(Step);
        var after = Nvml.UsedBytes(Math.Max(dev.index, 0));
        Reset();
        torch.cuda.synchronize(dev);
        c.Restart();
        for (int i = 0; i < steps; i++) graph.Replay();
        torch.cuda.synchronize(dev);
        var graphMs = c.Elapsed.TotalMilliseconds / steps;
        using var graphTokens = history.narrow(1, promptLength, steps).clone();

        var same = graphTokens.eq(staticTokens).all().item<bool>();
        using var refTail = refTokens.narrow(1, 1, steps);
        using var agreeMask = refTail.eq(graphTokens);
        var agree = agreeMask.to_type(ScalarType.Float32).mean().item<float>();
        string mismatch = "";
        if (agree < 1)
        {
            var a = refTail.cpu().data<long>().ToArray();
            var g = graphTokens.cpu().data<long>().ToArray();
            for (int i = 0; i < a.Length; i++)
                if (a[i] != g[i]) { mismatch = $"row {i / steps} step {i % steps + 1}: ref {a[i]} graph {g[i]}"; break; }
        }
        // Teacher-forced: feed the reference tokens to the static step; where its pick differs, how far apart
        // the two candidates' logits are (a near-tie in bf16 shows as a gap of a few hundredths).
        Reset();
        long tfAgree = 0;
        double tfGap = 0;
        for (int i = 0; i < steps; i++)
        {
            using var s = NewDisposeScope();
            ids.copy_(refTokens.narrow(1, i, 1));
            var logits = model.DecodeSlots(ids, positions, kv, capacity).to_type(ScalarType.Float32);
            var pick = logits.argmax(-1, keepdim: true);
            var want = refTokens.narrow(1, i + 1, 1);
            tfAgree += pick.eq(want).sum().item<long>();
            tfGap = Math.Max(tfGap, (logits.gather(1, pick) - logits.gather(1, want)).max().item<float>());
            positions.add_(1);
            slot.add_(1);
        }
        first.Dispose();
        return new DecodeGraphProbeResult(refMs, staticMs, graphMs, graph.CaptureMilliseconds, (after - before) / 1048576.0, same, agree, mismatch,
            tfAgree, (long)batch * steps, tfGap);
    }
}
