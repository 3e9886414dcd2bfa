using Osprey.Inference;
using System.Diagnostics;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tokenization;
using TorchSharp;

namespace Osprey.Serving;

/// <summary>
/// Times the serving engine the way clients see it: random prompts, end-of-sequence ignored, all requests
/// submitted at once, greedy. Time to first token includes queueing and prefill.
/// </summary>
public static class EngineBenchmark
{
    /// <summary>Runs one untimed warm-up round and one timed round at each concurrency.</summary>
    public static IEnumerable<EngineBenchmarkResult> Run(CausalLM model, Tokenizer tokenizer, IReadOnlyList<int> concurrencies, int promptLength, int newTokens,
        bool cudaGraphs = true, TextWriter? log = null, long seed = 0)
    {
        var most = concurrencies.Max();
        var len = promptLength + newTokens + 1;
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = most, MaxModelLen = len, MaxQueue = most, CudaGraphs = cudaGraphs });
        log?.WriteLine(engine.GraphsOffReason is null ? "CUDA graphs: on" : $"CUDA graphs: off ({engine.GraphsOffReason})");
        var rng = new Random((int)seed);
        int[] Prompt() => Enumerable.Range(0, promptLength).Select(_ => rng.Next(3, model.Spec.VocabSize)).ToArray();
        foreach (var c in concurrencies)
        {
            // Warm-up: the same round once, untimed, so every kernel shape has run and every CUDA graph of the round
            // (one per rows × keys bucket, captured on first use at 50–300 ms each) exists, as on a server that has
            // been taking traffic.
            Task.WhenAll(Enumerable.Range(0, c).Select(_ => engine.GenerateAsync(new EngineRequest(Prompt(), Sampling(newTokens))))).GetAwaiter().GetResult();
            var prompts = Enumerable.Range(0, c).Select(_ => Prompt()).ToArray();
            PhaseTimer.TakeTotals();
            var stepsBefore = engine.DecodeSteps;
            var clock = Stopwatch.StartNew();
            var runs = prompts.Select(p => Time(engine, p, newTokens, clock)).ToArray();
            var timings = Task.WhenAll(runs).GetAwaiter().GetResult();
            var wall = clock.Elapsed.TotalSeconds;
            var produced = timings.Sum(t => t.Tokens);
            var gpu = model.Device.type == DeviceType.CUDA ? Nvml.UsedBytes(Math.Max(model.Device.index, 0)) : -1;
            var perRequest = timings.Average(t => (t.Tokens - 1) / (t.Last - t.First));
            if (PhaseTimer.Enabled && log is not null)
            {
                // OSPREY_PROFILE=1: the engine thread's time by phase (each mark synchronises the device, which slows the run).
                var steps = Math.Max(1, engine.DecodeSteps - stepsBefore);
                log.WriteLine($"profile, {c} requests, {steps} decode steps (ms per decode step):");
                foreach (var (phase, ms) in PhaseTimer.TakeTotals().OrderByDescending(p => p.Value))
                    log.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {ms / steps,8:F3}  {phase}"));
            }
            yield return new EngineBenchmarkResult(c, promptLength, newTokens, wall, timings.Average(t => t.First - t.Submit),
                timings.Max(t => t.First - t.Submit), produced / wall, perRequest, 1000.0 / perRequest, gpu);
        }
    }

    static SamplingParams Sampling(int tokens) => new() { MaxTokens = tokens, Temperature = 0, IgnoreEos = true };

    readonly record struct Timing(double Submit, double First, double Last, int Tokens);

    static async Task<Timing> Time(InferenceEngine engine, int[] prompt, int newTokens, Stopwatch clock)
    {
        var submit = clock.Elapsed.TotalSeconds;
        double first = 0, last = 0;
        var tokens = 0;
        await foreach (var u in engine.Submit(new EngineRequest(prompt, Sampling(newTokens))).ConfigureAwait(false))
        {
            if (u.Token is null) continue;
            last = clock.Elapsed.TotalSeconds;
            if (tokens++ == 0) first = last;
        }
        return new Timing(submit, first, last, tokens);
    }
}
