using System.Diagnostics;
using Osprey.Models;
using Osprey.Runtime;

using TorchSharp;

namespace Osprey.Inference;

/// <summary>
/// Times prefill and greedy decode the way the HF reference script does: random prompt ids, end-of-sequence
/// ignored so every row decodes exactly <c>newTokens</c>; prefill time is the time to the first token
/// (forward over the prompt + pick + copy to host), decode speed counts the remaining tokens of all rows.
/// </summary>
public static class GenerationBenchmark
{
    /// <summary>Runs <paramref name="warmup"/> untimed passes, then one timed pass.</summary>
    public static BenchmarkResult Run(CausalLM model, int batch, int promptLength, int newTokens, int warmup = 1, long seed = 0)
    {
        if (newTokens < 2) throw new OspreyException("the benchmark needs at least 2 new tokens to time decoding.");
        var rng = new Random((int)seed);
        var prompts = Enumerable.Range(0, batch)
            .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, promptLength).Select(_ => rng.Next(3, model.Spec.VocabSize)).ToArray())
            .ToArray();
        var options = new SamplingParams { MaxTokens = newTokens, Temperature = 0 };
        var generator = new TokenGenerator(model);
        for (int i = 0; i < warmup; i++) generator.Generate(prompts, options with { MaxTokens = Math.Min(newTokens, 8) });

        PhaseTimer.TakeTotals(); // the warm-up's phases (OSPREY_PROFILE=1) do not count
        var clock = Stopwatch.StartNew();
        double firstToken = 0;
        var results = generator.Generate(prompts, options, e =>
        {
            if (e.Index == 0 && e.Sequence == 0) firstToken = clock.Elapsed.TotalSeconds;
        });
        var total = clock.Elapsed.TotalSeconds;
        var produced = results.Sum(r => r.Tokens.Count);
        var decodeSeconds = total - firstToken;
        var gpuIndex = model.Device.type == DeviceType.CUDA ? model.Device.index : -1;
        return new BenchmarkResult(batch, promptLength, newTokens, firstToken, batch * (double)promptLength / firstToken,
            decodeSeconds, (produced - batch) / decodeSeconds, decodeSeconds / (newTokens - 1) * 1000.0,
            gpuIndex >= 0 ? Nvml.UsedBytes(Math.Max(gpuIndex, 0)) : -1);
    }
}
