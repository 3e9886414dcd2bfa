using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// Pipelined decode (<see cref="EngineOptions.AsyncDecode"/>: step n + 1 launched from step n's tokens still on the
/// device, step n's host work done after it) must hand out exactly what the step-by-step engine does: the same tokens,
/// text, finish reasons and stop reasons for every request, through stop tokens, stop strings, token and length limits,
/// penalties, seeded sampling, requests that join mid-stream and cancellations. On the CPU the steps do not overlap, but
/// the pipeline's bookkeeping (dropped tokens of ended rows, reordering after compaction, drains) is the same code.
/// </summary>
public sealed class PipelinedDecodeTests
{
    static readonly Lazy<(CausalLM Model, Tokenizer Tokenizer)> s_qwen2 = new(() => Load("qwen2"));
    static readonly Lazy<(CausalLM Model, Tokenizer Tokenizer)> s_gemma2 = new(() => Load("gemma2"));

    static (CausalLM, Tokenizer) Load(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", family);
        return (CausalLM.Load(folder, CPU, ScalarType.Float32), Tokenizer.Load(folder));
    }

    static int[] Prompt(int seed, int length)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => r.Next(3, 250)).ToArray();
    }

    /// <summary>A mixed batch: greedy and seeded sampling, penalties, stop ids and strings, limits from 1 to 60 tokens.</summary>
    static async Task<List<EngineRequest>> Mixed(InferenceEngine reference, int count)
    {
        var requests = new List<EngineRequest>();
        for (var i = 0; i < count; i++)
        {
            var sampling = new SamplingParams { MaxTokens = 1 + i * 7 % 60, Temperature = i % 3 == 0 ? 0 : 0.9, TopP = 0.9, TopK = 40, Seed = 100 + i };
            if (i % 4 == 1) sampling = sampling with { RepetitionPenalty = 1.3 };
            if (i % 5 == 2) sampling = sampling with { PresencePenalty = 0.5, FrequencyPenalty = 0.3 };
            requests.Add(new EngineRequest(Prompt(i, 4 + i % 9), sampling));
        }
        // Stop ids and stop strings taken from what the reference engine writes, so they really end requests early.
        for (var i = 0; i < count; i += 3)
        {
            var free = await reference.GenerateAsync(requests[i]);
            if (free.Tokens.Count < 6) continue;
            requests[i] = i % 2 == 0
                ? requests[i] with { Sampling = requests[i].Sampling with { StopTokenIds = [free.Tokens[4].TokenId] } }
                : requests[i] with { Sampling = requests[i].Sampling with { Stop = [free.Text.Length > 3 ? free.Text.Substring(free.Text.Length / 2, 2) : free.Text] } };
        }
        return requests;
    }

    static void AssertSame(EngineResult expected, EngineResult actual, string what)
    {
        Assert.True(expected.Tokens.Select(t => t.TokenId).SequenceEqual(actual.Tokens.Select(t => t.TokenId)),
            $"{what}: tokens [{string.Join(",", actual.Tokens.Select(t => t.TokenId))}] instead of [{string.Join(",", expected.Tokens.Select(t => t.TokenId))}]");
        Assert.Equal(expected.Text, actual.Text);
        Assert.Equal(expected.Reason, actual.Reason);
        Assert.Equal(expected.StopReason?.ToString(), actual.StopReason?.ToString());
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("gemma2")]
    public async Task AMixedBatchGivesWhatTheStepByStepEngineGives(string family)
    {
        var (model, tokenizer) = family == "qwen2" ? s_qwen2.Value : s_gemma2.Value;
        using var plain = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 6, MaxModelLen = 128, AsyncDecode = false });
        var requests = await Mixed(plain, 14);
        var expected = await Task.WhenAll(requests.Select(r => plain.GenerateAsync(r)));
        Assert.Equal(0, plain.PipelinedSteps);

        using var piped = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 6, MaxModelLen = 128, AsyncDecode = true });
        // All at once (more than the 6 rows: the rest queue and join as rows free up) ...
        var together = await Task.WhenAll(requests.Select(r => piped.GenerateAsync(r)));
        for (var i = 0; i < requests.Count; i++) AssertSame(expected[i], together[i], $"{family} request {i} (all at once)");
        Assert.True(piped.PipelinedSteps > 20, $"only {piped.PipelinedSteps} of {piped.DecodeSteps} steps were pipelined");
        // ... and arriving while others decode.
        var staggered = new List<Task<EngineResult>>();
        foreach (var r in requests)
        {
            staggered.Add(piped.GenerateAsync(r));
            await Task.Delay(3);
        }
        var late = await Task.WhenAll(staggered);
        for (var i = 0; i < requests.Count; i++) AssertSame(expected[i], late[i], $"{family} request {i} (staggered)");
        Assert.Equal(0, piped.Stats.Running);
        Assert.Equal(0, piped.Stats.SlotsInUse);
    }

    [Fact]
    public async Task ARowEndingInTheMiddleOfTheBlockLeavesTheOthersInOrder()
    {
        // Rows 0 and 2 end early (a stop id, a stop string) while a step is in flight and nothing waits to join: the last
        // running row moves into each freed row, so the in-flight tokens must be reordered to feed the next step.
        var (model, tokenizer) = s_qwen2.Value;
        using var plain = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 5, MaxModelLen = 96, AsyncDecode = false });
        var requests = Enumerable.Range(0, 5).Select(i => new EngineRequest(Prompt(20 + i, 6),
            new SamplingParams { MaxTokens = 60, Temperature = i % 2 == 0 ? 0 : 0.9, Seed = 50 + i })).ToList();
        var free0 = await plain.GenerateAsync(requests[0]);
        var free2 = await plain.GenerateAsync(requests[2]);
        requests[0] = requests[0] with { Sampling = requests[0].Sampling with { StopTokenIds = [free0.Tokens[6].TokenId] } };
        requests[2] = requests[2] with { Sampling = requests[2].Sampling with { Stop = [free2.Text.Substring(free2.Text.Length / 3, 2)] } };
        var expected = await Task.WhenAll(requests.Select(r => plain.GenerateAsync(r)));
        Assert.True(expected[0].Tokens.Count < 10 && expected[2].Tokens.Count < 60, "the stops must end rows 0 and 2 early");

        using var piped = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 5, MaxModelLen = 96, AsyncDecode = true });
        var actual = await Task.WhenAll(requests.Select(r => piped.GenerateAsync(r)));
        for (var i = 0; i < requests.Count; i++) AssertSame(expected[i], actual[i], $"request {i}");
        // The tokens computed for rows that had already ended are dropped, not counted.
        Assert.Equal(requests.Count, piped.Stats.Completed);
        Assert.Equal(actual.Sum(r => r.Tokens.Count), piped.Stats.GeneratedTokens);
        Assert.True(piped.PipelinedSteps > 40, $"only {piped.PipelinedSteps} of {piped.DecodeSteps} steps were pipelined");
    }

    [Fact]
    public async Task RowsRunToTheCacheEndAndCancelledRowsLeaveWithoutDisturbingTheRest()
    {
        var (model, tokenizer) = s_qwen2.Value;
        using var plain = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 4, MaxModelLen = 40, AsyncDecode = false });
        using var piped = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 4, MaxModelLen = 40, AsyncDecode = true });
        // Up to max_model_len: the last steps must not write past the cache.
        var toTheEnd = new EngineRequest(Prompt(1, 9), new SamplingParams { MaxTokens = 1000, Temperature = 0 });
        var other = new EngineRequest(Prompt(2, 5), new SamplingParams { MaxTokens = 1000, Temperature = 0.8, Seed = 7 });
        var e1 = await plain.GenerateAsync(toTheEnd);
        var e2 = await plain.GenerateAsync(other);
        Assert.Equal(31, e1.Tokens.Count);
        var r = await Task.WhenAll(piped.GenerateAsync(toTheEnd), piped.GenerateAsync(other));
        AssertSame(e1, r[0], "to the cache end");
        AssertSame(e2, r[1], "beside it");

        // A row cancelled mid-stream leaves while a step is in flight; the others' tokens are unchanged.
        using var cts = new CancellationTokenSource();
        var received = 0;
        var cancelled = Task.Run(async () =>
        {
            await foreach (var u in piped.Submit(new EngineRequest(Prompt(3, 6), new SamplingParams { MaxTokens = 1000, Temperature = 0 }), cts.Token))
                if (++received == 5) cts.Cancel();
        });
        var survivors = await Task.WhenAll(piped.GenerateAsync(toTheEnd), piped.GenerateAsync(other));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(5, received);
        AssertSame(e1, survivors[0], "to the cache end, beside a cancelled row");
        AssertSame(e2, survivors[1], "sampled, beside a cancelled row");
        Assert.True(piped.PipelinedSteps > 0);
    }

    [Fact]
    public async Task RowsWithAResponseFormatGiveWhatTheStepByStepEngineGives()
    {
        // Grammar rows pipeline too: the previous step's tokens are handed out (grammars stepped, masks computed) while
        // the forward pass runs, and sampling is queued after. Six constrained rows (json_object and a schema, greedy and
        // seeded; at least ParallelMaskRows, so the grammars step on the cores at once) beside free rows that end early,
        // all from one queue into 5 rows, then 3 constrained rows alone (below the parallel threshold).
        var (model, tokenizer) = s_qwen2.Value;
        var eos = tokenizer.TokenToId("<|im_end|>")!.Value;
        var schema = Osprey.Inference.Constraints.JsonSchemaGrammar.FromSchema("""
            {"type":"object","properties":{"name":{"type":"string","maxLength":5},"n":{"type":"integer"},
             "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},"required":["name","n","tags"],"additionalProperties":false}
            """);
        var requests = new List<EngineRequest>();
        for (var i = 0; i < 6; i++)
            requests.Add(new EngineRequest(Prompt(40 + i, 5 + i), new SamplingParams
            {
                MaxTokens = 70, Temperature = i % 2 == 0 ? 0 : 1.0, Seed = 9 + i, StopTokenIds = [eos],
                Grammar = i < 3 ? Osprey.Inference.Constraints.JsonSchemaGrammar.AnyObject : schema,
            }));
        for (var i = 0; i < 3; i++)
            requests.Add(new EngineRequest(Prompt(60 + i, 4), new SamplingParams { MaxTokens = 3 + 5 * i, Temperature = 0.9, Seed = i }));
        using var plain = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 5, MaxModelLen = 128, AsyncDecode = false });
        var expected = await Task.WhenAll(requests.Select(r => plain.GenerateAsync(r)));
        Assert.Contains(expected.Take(6), r => r.Reason == FinishReason.Eos); // some values complete inside the limit
        using var piped = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 5, MaxModelLen = 128, AsyncDecode = true });
        var actual = await Task.WhenAll(requests.Select(r => piped.GenerateAsync(r)));
        for (var i = 0; i < requests.Count; i++) AssertSame(expected[i], actual[i], $"request {i}");
        Assert.True(piped.PipelinedSteps > 40, $"only {piped.PipelinedSteps} of {piped.DecodeSteps} steps were pipelined");
        var few = requests.Take(3).ToArray();
        var before = piped.PipelinedSteps;
        var alone = await Task.WhenAll(few.Select(r => piped.GenerateAsync(r)));
        for (var i = 0; i < few.Length; i++) AssertSame(expected[i], alone[i], $"request {i} (three rows)");
        Assert.True(piped.PipelinedSteps > before + 10);
        Assert.Equal(0, piped.Stats.Running);
    }

    [Fact]
    public async Task RequestsThatNeedTheHostEachStepTurnThePipelineOff()
    {
        var (model, tokenizer) = s_qwen2.Value;
        using var piped = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 4, MaxModelLen = 128, AsyncDecode = true });
        var withLogprobs = await piped.GenerateAsync(new EngineRequest(Prompt(4, 6), new SamplingParams { MaxTokens = 20, Temperature = 0, Logprobs = 2 }));
        Assert.Equal(20, withLogprobs.Tokens.Count);
        Assert.All(withLogprobs.Tokens, t => Assert.Equal(2, t.Top!.Count));
        Assert.Equal(0, piped.PipelinedSteps);
    }
}
