using Osprey.Inference;
using Osprey.Inference.Constraints;
using System.Diagnostics;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tokenization;
using TorchSharp;

namespace Osprey.Serving;

/// <summary>
/// Times the serving engine the way clients see it: random prompts, end-of-sequence ignored, all requests
/// submitted at once, greedy. Time to first token includes queueing and prefill. With a grammar, each
/// concurrency is run twice: constrained (a row ends when its value is complete), then the same prompts
/// unconstrained with each row held to the length its constrained run produced, so the two rounds have the same
/// batch at every step and their throughputs differ only by the cost of the masks.
/// </summary>
public static class EngineBenchmark
{
    /// <summary>
    /// Runs one untimed warm-up round and one timed round at each concurrency; with <paramref name="grammar"/>
    /// (named <paramref name="responseFormat"/> in the results) <paramref name="pairs"/> times a constrained result then
    /// its matched free-text one, on the same prompts (a round of 32 rows is a fraction of a second on a GPU, and the
    /// free-text reference alone moved by up to 30% between processes: alternating pairs in one process compare each
    /// constrained round with a free-text round run right after it).
    /// </summary>
    public static IEnumerable<EngineBenchmarkResult> Run(CausalLM model, Tokenizer tokenizer, IReadOnlyList<int> concurrencies, int promptLength, int newTokens,
        bool cudaGraphs = true, TextWriter? log = null, long seed = 0, JsonSchemaGrammar? grammar = null, string? responseFormat = null,
        (double Temperature, double TopP, int TopK)? sampling = null, int pairs = 1)
    {
        if (pairs < 1) throw new OspreyException($"--pairs must be at least 1, got {pairs}.");
        var drawn = 0L;
        SamplingParams Sampling(int tokens, JsonSchemaGrammar? g) => sampling is { Temperature: > 0 } s
            ? new() { MaxTokens = tokens, Temperature = s.Temperature, TopP = s.TopP, TopK = s.TopK, Seed = seed + Interlocked.Increment(ref drawn), IgnoreEos = true, Grammar = g }
            : Greedy(tokens, g);
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
            // been taking traffic. With a grammar the constrained round is warmed too (the tokenizer's tables and
            // the first masks are built once per tokenizer, as on a server's first structured request).
            engine.GenerateAllAsync([.. Enumerable.Range(0, c).Select(_ => new EngineRequest(Prompt(), Sampling(newTokens, null)))]).GetAwaiter().GetResult();
            if (grammar is not null)
                engine.GenerateAllAsync([.. Enumerable.Range(0, c).Select(_ => new EngineRequest(Prompt(), Sampling(newTokens, grammar)))]).GetAwaiter().GetResult();
            var prompts = Enumerable.Range(0, c).Select(_ => Prompt()).ToArray();
            if (grammar is null)
            {
                yield return Round(engine, model, prompts, [.. prompts.Select(_ => newTokens)], null, null, promptLength, newTokens, log, Sampling);
                continue;
            }
            var vocabulary = Osprey.Inference.Constraints.TokenVocabulary.For(tokenizer);
            for (var pair = 0; pair < pairs; pair++)
            {
                var (walks, checks, steps) = (vocabulary.Walks, vocabulary.Checks, engine.DecodeSteps);
                var constrained = Round(engine, model, prompts, [.. prompts.Select(_ => newTokens)], grammar, responseFormat ?? "grammar", promptLength, newTokens, log, Sampling, out var lengths);
                // What the masks cost on the host: whole-vocabulary trie walks (a new lexical state) and candidate tokens
                // stepped through a row's real parse state.
                log?.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"grammar: {vocabulary.Walks - walks} trie walks, {vocabulary.Checks - checks} candidate checks ({(vocabulary.Checks - checks) / (double)Math.Max(1, engine.DecodeSteps - steps):F0} per decode step)"));
                yield return constrained;
                yield return Round(engine, model, prompts, lengths, null, null, promptLength, newTokens, log, Sampling);
            }
        }
    }

    /// <summary>
    /// A grammar from the benchmark's --response_format: "json_object" (any object) or the path of a file
    /// holding a JSON schema.
    /// </summary>
    public static JsonSchemaGrammar ResponseFormat(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value == "json_object") return JsonSchemaGrammar.AnyObject;
        if (!File.Exists(value)) throw new OspreyException($"--response_format: '{value}' is neither json_object nor an existing file; give json_object or the path of a JSON schema file.");
        try
        {
            return JsonSchemaGrammar.FromSchema(File.ReadAllText(value));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new OspreyException($"{value}: line {e.LineNumber + 1}: not valid JSON ({e.Message}); the file must hold one JSON schema.");
        }
        catch (JsonSchemaException e)
        {
            throw new OspreyException($"{value}: {e.Message}");
        }
    }

    static EngineBenchmarkResult Round(InferenceEngine engine, CausalLM model, int[][] prompts, int[] lengths, JsonSchemaGrammar? grammar, string? format,
        int promptLength, int newTokens, TextWriter? log, Func<int, JsonSchemaGrammar?, SamplingParams> sampling) =>
        Round(engine, model, prompts, lengths, grammar, format, promptLength, newTokens, log, sampling, out _);

    static EngineBenchmarkResult Round(InferenceEngine engine, CausalLM model, int[][] prompts, int[] lengths, JsonSchemaGrammar? grammar, string? format,
        int promptLength, int newTokens, TextWriter? log, Func<int, JsonSchemaGrammar?, SamplingParams> sampling, out int[] produced)
    {
        var c = prompts.Length;
        PhaseTimer.TakeTotals();
        var stepsBefore = engine.DecodeSteps;
        var pipelinedBefore = engine.PipelinedSteps;
        var gcBefore = GcCounters.Now();
        var clock = Stopwatch.StartNew();
        // All requests queued at once: the worker admits the whole round together, so the same prompts are always batched
        // the same way and equal settings give equal tokens (the digest below compares runs). Submitted one by one they
        // reached a running worker in varying groups, and the bf16 rounding of differently composed batches could tip
        // a near tie the other way.
        var requests = prompts.Select((p, i) => new EngineRequest(p, sampling(lengths[i], grammar))).ToArray();
        var submitted = clock.Elapsed.TotalSeconds;
        var runs = engine.SubmitAll(requests).Select(updates => Time(updates, submitted, clock)).ToArray();
        var timings = Task.WhenAll(runs).GetAwaiter().GetResult();
        var wall = clock.Elapsed.TotalSeconds;
        var gc = GcCounters.Now() - gcBefore;
        produced = [.. timings.Select(t => t.Tokens)];
        // OSPREY_BENCH_TOKENS=FILE: each constrained round's token ids appended as one JSON line (to replay its masks off the GPU).
        if (format is not null && Environment.GetEnvironmentVariable("OSPREY_BENCH_TOKENS") is { Length: > 0 } dump)
            File.AppendAllText(dump, System.Text.Json.JsonSerializer.Serialize(new { format, rows = timings.Select(t => t.Ids).ToArray() }) + "\n");
        var total = timings.Sum(t => t.Tokens);
        // What came out, as one number (FNV-1a over each request's ids, requests in order): equal digests mean equal
        // outputs, e.g. between pipelined decode and the step-by-step engine on the same greedy round.
        var digest = timings.Aggregate(14695981039346656037UL, (h, t) => (h ^ t.Digest) * 1099511628211UL);
        log?.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"tokens: digest {digest:x16} over {c} requests; {engine.PipelinedSteps - pipelinedBefore} of {engine.DecodeSteps - stepsBefore} decode steps pipelined"));
        // The .NET side of the round: the host's allocations, the collections they caused and the time every managed
        // thread (the engine's included) was paused for them, and the work items the thread pool ran (stream readers,
        // parallel grammar work).
        log?.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"host: {gc.Allocated / 1048576.0:F1} MB allocated, {gc.Gen0}/{gc.Gen1}/{gc.Gen2} gen0/1/2 collections, {gc.Paused.TotalMilliseconds:F1} ms paused, {gc.WorkItems} thread-pool work items"));
        var gpu = model.Device.type == DeviceType.CUDA ? Nvml.UsedBytes(Math.Max(model.Device.index, 0)) : -1;
        // A row of one token has no decode interval; it counts in throughput but not in the per-request mean.
        var decoding = timings.Where(t => t.Tokens > 1 && t.Last > t.First).ToArray();
        var perRequest = decoding.Length == 0 ? 0 : decoding.Average(t => (t.Tokens - 1) / (t.Last - t.First));
        if (PhaseTimer.Enabled && log is not null)
        {
            // OSPREY_PROFILE=1: the engine thread's time by phase (each mark synchronises the device, which slows the run).
            var steps = Math.Max(1, engine.DecodeSteps - stepsBefore);
            log.WriteLine($"profile, {c} requests{(format is null ? "" : ", " + format)}, {steps} decode steps (ms per decode step):");
            foreach (var (phase, ms) in PhaseTimer.TakeTotals().OrderByDescending(p => p.Value))
                log.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {ms / steps,8:F3}  {phase}"));
        }
        return new EngineBenchmarkResult(c, promptLength, newTokens, wall, timings.Average(t => t.First - t.Submit),
            timings.Max(t => t.First - t.Submit), total / wall, perRequest, perRequest > 0 ? 1000.0 / perRequest : double.NaN, gpu, format, total);
    }

    /// <summary>Process-wide .NET counters that a round's difference is printed from.</summary>
    readonly record struct GcCounters(long Allocated, int Gen0, int Gen1, int Gen2, TimeSpan Paused, long WorkItems)
    {
        public static GcCounters Now() => new(GC.GetTotalAllocatedBytes(), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            GC.GetTotalPauseDuration(), ThreadPool.CompletedWorkItemCount);

        public static GcCounters operator -(GcCounters a, GcCounters b) =>
            new(a.Allocated - b.Allocated, a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.Paused - b.Paused, a.WorkItems - b.WorkItems);
    }

    static SamplingParams Greedy(int tokens, JsonSchemaGrammar? grammar) => new() { MaxTokens = tokens, Temperature = 0, IgnoreEos = true, Grammar = grammar };

    readonly record struct Timing(double Submit, double First, double Last, int Tokens, ulong Digest, List<int> Ids);

    static async Task<Timing> Time(IAsyncEnumerable<EngineUpdate> updates, double submit, Stopwatch clock)
    {
        double first = 0, last = 0;
        var tokens = 0;
        var digest = 14695981039346656037UL;
        var ids = new List<int>();
        await foreach (var u in updates.ConfigureAwait(false))
        {
            if (u.Token is not { } token) continue;
            last = clock.Elapsed.TotalSeconds;
            if (tokens++ == 0) first = last;
            digest = (digest ^ (ulong)token.TokenId) * 1099511628211UL;
            ids.Add(token.TokenId);
        }
        return new Timing(submit, first, last, tokens, digest, ids);
    }
}
