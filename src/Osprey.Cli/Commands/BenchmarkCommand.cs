using System.Globalization;
using System.Text.Json;
using Osprey.Cli.Args;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Options;
using Osprey.Serving;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey benchmark</c>: prefill and greedy-decode speed of a model on this machine.</summary>
internal sealed class BenchmarkCommand : ICommand
{
    public string Name => "benchmark";

    public string Summary => "Time prefill and greedy decode (random prompts, EOS ignored) at one or more batch sizes.";

    public string Usage => OptionSet.For<BenchmarkOptions>().Help();

    /// <summary>The median of <paramref name="values"/> (the mean of the middle two for an even count), with the smallest and largest.</summary>
    internal static (double Median, double Min, double Max) Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return (sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, sorted[0], sorted[^1]);
    }

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var o = options.Bind<BenchmarkOptions>();
        options.EnsureNoUnknownFlags();
        if (o.Pairs < 1) throw new UserError($"--pairs must be at least 1, got {o.Pairs}.");
        if (o.Pairs > 1 && o.ResponseFormat is null)
            throw new UserError("--pairs needs --response_format: it repeats the structured/free-text pair of each concurrency.");
        if (o.Temperature > 0 && o.Concurrency.Count == 0)
            throw new UserError("--temperature needs --concurrency N: sampled decoding is timed through the serving engine (static batches decode greedily).");
        if (o.Temperature < 0 || !double.IsFinite(o.Temperature)) throw new UserError($"--temperature must be 0 (greedy) or positive, got {o.Temperature}.");
        if (o.ResponseFormat is not null && o.Concurrency.Count == 0)
            throw new UserError("--response_format needs --concurrency N: structured decoding is timed through the serving engine.");
        var (batches, prompt, newTokens, warmup, resultPath, concurrency, eager) = (o.BatchSizes, o.PromptLength, o.MaxNewTokens, o.Warmup, o.ResultPath, o.Concurrency, o.EnforceEager);
        o.TensorParallel.Validate();
        if (o.TensorParallel.Size > 1 && concurrency.Count == 0)
            throw new UserError("--tensor_parallel_size needs --concurrency N: the tensor-parallel model runs in the serving engine.");
        var flags = new ModelFlags(o.Model);
        var runtime = Runtime.TorchRuntime.Initialize(flags.Device, stderr); // before the demo model touches TorchSharp
        var folder = flags.Model is null ? DemoModel.EnsureCreated() : flags.RequireFolder();
        // A tensor-parallel worker started by rank 0 below repeats rank 0's model steps on its shard.
        if (TensorParallelWorker.IsWorkerProcess) return TensorParallelWorker.Run(folder, flags.LoadOptions(stderr), stderr);
        if (o.TensorParallel.Size > 1) TensorParallelShard.CheckFolder(folder, o.TensorParallel.Size);
        using var group = o.TensorParallel.Size > 1 ? Osprey.Distributed.TensorParallelGroup.Start(o.TensorParallel.Size, OspreyApp.WorkerCommand, runtime.Device, stderr) : null;
        using var model = CausalLM.Load(folder, flags.LoadOptions(stderr) with { TensorParallel = group });
        stdout.WriteLine($"model {folder} on {model.Device} in {Runtime.DTypes.Name(model.DType)}");
        if (concurrency.Count > 0)
        {
            var tokenizer = ChatPrompt.LoadTokenizer(folder, "the serving benchmark needs the model's tokenizer.json.");
            var grammar = o.ResponseFormat is { } format ? EngineBenchmark.ResponseFormat(format) : null;
            var structured = grammar is not null;
            stdout.WriteLine("requests  prompt  new  wall_s  ttft_mean_s  ttft_max_s  throughput_tok/s  per_request_tok/s  ms/token  gpu_used_GiB" + (structured ? "  tokens  format" : ""));
            EngineBenchmarkResult? constrained = null;
            var sampling = o.Temperature > 0 ? (o.Temperature, o.TopP, o.TopK) : ((double, double, int)?)null;
            if (sampling is { } s) stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sampling: temperature {s.Item1}, top_p {s.Item2}, top_k {s.Item3} (seeded per request)"));
            var ratios = new List<double>();
            foreach (var r in EngineBenchmark.Run(model, tokenizer, [.. concurrency], prompt, newTokens, !eager, stdout, grammar: grammar, responseFormat: o.ResponseFormat, sampling: sampling, pairs: o.Pairs))
            {
                stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,8}  {1,6}  {2,3}  {3,6:F2}  {4,11:F3}  {5,10:F3}  {6,16:F1}  {7,17:F1}  {8,8:F2}  {9,12:F2}",
                    r.Concurrency, r.PromptLength, r.NewTokens, r.WallSeconds, r.TtftMeanSeconds, r.TtftMaxSeconds, r.ThroughputTokensPerSecond,
                    r.DecodeTokensPerSecondPerRequest, r.MillisecondsPerToken, r.GpuUsedBytes < 0 ? double.NaN : r.GpuUsedBytes / 1073741824.0)
                    + (structured ? string.Format(CultureInfo.InvariantCulture, "  {0,6}  {1}", r.GeneratedTokens, r.ResponseFormat ?? "text (same lengths)") : ""));
                if (resultPath is not null)
                    File.AppendAllText(resultPath, JsonSerializer.Serialize(new { engine = "osprey-serve", model = folder, device = model.Device.ToString(), dtype = Runtime.DTypes.Name(model.DType), result = r }) + "\n");
                // The engine yields a constrained round, then the same rows as free text: the pair's ratio is the grammar's cost.
                if (r.ResponseFormat is not null) constrained = r;
                else if (constrained is not null)
                {
                    var ratio = constrained.ThroughputTokensPerSecond / r.ThroughputTokensPerSecond;
                    stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "structured/plain throughput at {0} requests: {1:F1} / {2:F1} tok/s = {3:F3}",
                        r.Concurrency, constrained.ThroughputTokensPerSecond, r.ThroughputTokensPerSecond, ratio));
                    constrained = null;
                    ratios.Add(ratio);
                    if (ratios.Count == o.Pairs && o.Pairs > 1)
                    {
                        var (median, low, high) = Median(ratios);
                        stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "structured/plain at {0} requests, median of {1} pairs: {2:F3} ({3:F3}-{4:F3})", r.Concurrency, ratios.Count, median, low, high));
                    }
                    if (ratios.Count == o.Pairs) ratios.Clear();
                }
            }
            return 0;
        }
        stdout.WriteLine("batch  prompt  new  prefill_s  prefill_tok/s  decode_tok/s  ms/step  gpu_used_GiB");
        foreach (var b in batches)
        {
            var r = GenerationBenchmark.Run(model, b, prompt, newTokens, warmup);
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,5}  {1,6}  {2,3}  {3,9:F3}  {4,13:F0}  {5,12:F1}  {6,7:F2}  {7,12:F2}",
                r.Batch, r.PromptLength, r.NewTokens, r.PrefillSeconds, r.PrefillTokensPerSecond, r.DecodeTokensPerSecond, r.MillisecondsPerStep,
                r.GpuUsedBytes < 0 ? double.NaN : r.GpuUsedBytes / 1073741824.0));
            if (Runtime.PhaseTimer.Enabled)
            {
                // OSPREY_PROFILE=1: where the timed pass's time went, per decode step (the phases code marks; the managed CPU decoder marks its own).
                stdout.WriteLine($"profile, batch {b}, {newTokens - 1} decode steps (ms per decode step):");
                foreach (var (phase, ms) in Runtime.PhaseTimer.TakeTotals().OrderByDescending(p => p.Value))
                    stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {ms / (newTokens - 1),8:F3}  {phase}"));
            }
            if (resultPath is not null)
                File.AppendAllText(resultPath, JsonSerializer.Serialize(new { engine = "osprey", model = folder, device = model.Device.ToString(), dtype = Runtime.DTypes.Name(model.DType), result = r }) + "\n");
        }
        return 0;
    }
}
