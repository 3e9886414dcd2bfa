using System.Text.Json;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using Osprey.Tuners.Lora;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// The continuous-batching engine on the tiny parity models (CPU, float32): transformers' greedy generations
/// (infer_golden.json, made by tools/make_infer_fixtures.py), the same answers alone and in a busy batch,
/// chunked prefill, stop strings, limits, cancellation, the queue bound, sampling, log-probabilities and
/// embeddings.
/// </summary>
public sealed class InferenceEngineTests
{
    static readonly Dictionary<string, Lazy<(CausalLM Model, Tokenizer Tokenizer)>> s_models =
        new[] { "qwen2", "llama3", "gemma2", "phi3", "mistral", "qwen3", "gemma3_text", "llama" }
            .ToDictionary(f => f, f => new Lazy<(CausalLM, Tokenizer)>(() => Load(f)));

    static string Folder(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    static (CausalLM, Tokenizer) Load(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return (CausalLM.Load(Folder(family), CPU, ScalarType.Float32), Tokenizer.Load(Folder(family)));
    }

    static InferenceEngine Engine(string family, EngineOptions? options = null)
    {
        var (model, tokenizer) = s_models[family].Value;
        return new InferenceEngine(model, tokenizer, options ?? new EngineOptions { MaxBatchSize = 4, MaxModelLen = 256 });
    }

    static SamplingParams Greedy(int maxTokens) => new() { MaxTokens = maxTokens, Temperature = 0 };

    sealed record GoldenCase(string Name, int[] PromptIds, int[] NewIds, double? Penalty, int MaxNew);

    static IReadOnlyList<GoldenCase> Golden(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder(family), "infer_golden.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new GoldenCase(
            c.GetProperty("name").GetString()!,
            c.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("settings").GetProperty("repetition_penalty").ValueKind == JsonValueKind.Number ? c.GetProperty("settings").GetProperty("repetition_penalty").GetDouble() : null,
            c.GetProperty("settings").GetProperty("max_new_tokens").GetInt32())).ToArray();
    }

    public static TheoryData<string> Families() => new() { "qwen2", "llama3", "gemma2", "phi3", "mistral", "qwen3", "gemma3_text", "llama" };

    [Theory]
    [MemberData(nameof(Families))]
    public async Task AllGoldenCasesAtOnceGiveTransformersGreedyTokens(string family)
    {
        // Every case of the family is submitted at once, so they prefill and decode together in one batch of
        // rows at different positions; each must still get exactly transformers' greedy tokens.
        using var engine = Engine(family);
        var cases = Golden(family);
        var tasks = cases.Select(c => engine.GenerateAsync(new EngineRequest(c.PromptIds,
            Greedy(c.MaxNew) with { RepetitionPenalty = c.Penalty ?? 1.0 }))).ToArray();
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < cases.Count; i++)
        {
            var ids = results[i].Tokens.Select(t => t.TokenId).ToArray();
            var expected = cases[i].NewIds;
            // transformers stops at its eos; with no stop ids given the engine runs to max tokens, so compare the prefix.
            Assert.True(ids.Length >= expected.Length, $"{family}/{cases[i].Name}: {ids.Length} tokens");
            Assert.Equal(expected, ids.Take(expected.Length).ToArray());
        }
        Assert.Equal(0, engine.Stats.Running);
        Assert.Equal(0, engine.Stats.SlotsInUse);
    }

    [Fact]
    public async Task SubmitAllStreamsEachCaseTransformersGreedyTokensAndAdmitsTheBatchTogether()
    {
        // The benchmark's way in: the whole batch queued at once, each request's updates streamed.
        using var engine = Engine("qwen2", new EngineOptions { MaxBatchSize = 8, MaxModelLen = 256 });
        var cases = Golden("qwen2").Take(4).ToArray();
        var streams = engine.SubmitAll([.. cases.Select(c => new EngineRequest(c.PromptIds, Greedy(c.MaxNew) with { RepetitionPenalty = c.Penalty ?? 1.0 }))]);
        Assert.Equal(cases.Length, streams.Count);
        var ids = await Task.WhenAll(streams.Select(async updates =>
        {
            var got = new List<int>();
            await foreach (var u in updates) if (u.Token is { } t) got.Add(t.TokenId);
            return got;
        }));
        for (var i = 0; i < cases.Length; i++)
        {
            Assert.True(ids[i].Count >= cases[i].NewIds.Length, $"{cases[i].Name}: {ids[i].Count} tokens");
            Assert.Equal(cases[i].NewIds, ids[i].Take(cases[i].NewIds.Length).ToArray());
        }
        // Admitted in one iteration, the rows decode together: the longest request's tokens after its first are the steps.
        Assert.Equal(cases.Max(c => c.MaxNew) - 1, engine.DecodeSteps);

        // A batch with an invalid request is refused whole: nothing of it runs.
        var before = engine.DecodeSteps;
        var bad = new[] { new EngineRequest(cases[0].PromptIds, Greedy(4)), new EngineRequest([], Greedy(4)) };
        var error = Assert.Throws<EngineException>(() => engine.SubmitAll(bad));
        Assert.Contains("prompt is empty", error.Message, StringComparison.Ordinal);
        await Task.Delay(200);
        Assert.Equal(before, engine.DecodeSteps);
        Assert.Equal(0, engine.Stats.Running);
    }

    static int[] Prompt(int seed, int length, int vocab)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => r.Next(4, vocab)).ToArray();
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("gemma2")]
    public async Task GreedyIsTheSameAloneAndInABusyBatch(string family)
    {
        var (model, _) = s_models[family].Value;
        var prompts = Enumerable.Range(0, 10).Select(i => Prompt(100 + i, 3 + 7 * i % 40, model.Spec.VocabSize)).ToArray();
        var alone = new List<int[]>();
        var generator = new TokenGenerator(model);
        foreach (var p in prompts)
            alone.Add(generator.Generate(p, new SamplingParams { MaxTokens = 12 + p.Length % 9, Temperature = 0 }).Tokens.ToArray());

        // Ten requests through four slots: requests join as others leave, at different lengths.
        using var engine = Engine(family, new EngineOptions { MaxBatchSize = 4, MaxModelLen = 128, PrefillChunk = 32 });
        var results = await Task.WhenAll(prompts.Select(p => engine.GenerateAsync(new EngineRequest(p, Greedy(12 + p.Length % 9)))));
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(alone[i], results[i].Tokens.Select(t => t.TokenId).ToArray());
            Assert.Equal("length", results[i].Finish);
        }
        var stats = engine.Stats;
        Assert.Equal(10, stats.Completed);
        Assert.Equal(0, stats.Running);
    }

    [Fact]
    public async Task ChunkedPrefillEqualsOnePass()
    {
        var (model, _) = s_models["qwen3"].Value;
        var prompt = Prompt(7, 90, model.Spec.VocabSize);
        using var whole = Engine("qwen3", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 200, PrefillChunk = 4096 });
        using var chunked = Engine("qwen3", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 200, PrefillChunk = 16 });
        var a = await whole.GenerateAsync(new EngineRequest(prompt, Greedy(10) with { Logprobs = 0 }));
        var b = await chunked.GenerateAsync(new EngineRequest(prompt, Greedy(10) with { Logprobs = 0 }));
        Assert.Equal(a.Tokens.Select(t => t.TokenId), b.Tokens.Select(t => t.TokenId));
        for (var i = 0; i < a.Tokens.Count; i++) Assert.Equal(a.Tokens[i].Logprob, b.Tokens[i].Logprob, 4);
    }

    [Fact]
    public async Task StopStringEndsTheTextBeforeIt()
    {
        using var engine = Engine("qwen2");
        var prompt = Golden("qwen2")[0].PromptIds;
        var free = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(16)));
        Assert.True(free.Text.Length >= 6, free.Text);
        var stop = free.Text.Substring(3, 2);
        var cut = free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)];
        var stopped = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(16) with { Stop = [stop, "never-appears"] }));
        Assert.Equal(cut, stopped.Text);
        Assert.Equal("stop", stopped.Finish);
        Assert.Equal(stop, stopped.StopReason);
        Assert.True(stopped.Tokens.Count < free.Tokens.Count);
    }

    [Fact]
    public async Task StopTokenEndsWithStopAndMaxTokensWithLength()
    {
        using var engine = Engine("llama3");
        var prompt = Golden("llama3")[0].PromptIds;
        var free = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(10)));
        Assert.Equal("length", free.Finish);
        Assert.Equal(10, free.Tokens.Count);
        var third = free.Tokens[2].TokenId;
        var stopped = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(10) with { StopTokenIds = [third] }));
        Assert.Equal("stop", stopped.Finish);
        Assert.Equal(third, stopped.StopReason);
        Assert.Equal(free.Tokens.Take(3).Select(t => t.TokenId), stopped.Tokens.Select(t => t.TokenId));
        var ignored = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(10) with { StopTokenIds = [third], IgnoreEos = true }));
        Assert.Equal(10, ignored.Tokens.Count);
    }

    [Fact]
    public async Task OutputStopsAtMaxModelLenAndLongPromptsAreRefused()
    {
        using var engine = Engine("llama3", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 32 });
        var prompt = Prompt(3, 28, 256);
        var r = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(100)));
        Assert.Equal(4, r.Tokens.Count);
        Assert.Equal("length", r.Finish);
        var e = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest(Prompt(3, 32, 256), Greedy(1))));
        Assert.Equal(EngineErrorKind.PromptTooLong, e.Kind);
        Assert.Contains("max_model_len is 32", e.Message);
        var bad = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest([1, 99999], Greedy(1))));
        Assert.Equal(EngineErrorKind.InvalidRequest, bad.Kind);
        var temp = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest([1, 2], Greedy(1) with { TopP = 0 })));
        Assert.Contains("top_p", temp.Message);
    }

    [Fact]
    public async Task CancellingFreesTheSlotAndOthersCarryOn()
    {
        // Cancelled requests ask for far more tokens than the test takes to cancel them, however fast the machine.
        using var engine = Engine("llama3", new EngineOptions { MaxBatchSize = 2, MaxModelLen = 32768 });
        var prompt = Prompt(11, 12, 256);
        var expected = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(40)));
        using var cts = new CancellationTokenSource();
        var received = 0;
        var cancelled = Task.Run(async () =>
        {
            await foreach (var u in engine.Submit(new EngineRequest(prompt, Greedy(30000)), cts.Token))
                if (++received == 3) cts.Cancel();
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(3, received); // nothing after the cancel, even updates already made
        var other = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(40)));
        Assert.Equal(expected.Tokens.Select(t => t.TokenId), other.Tokens.Select(t => t.TokenId));
        await WaitFor(() => engine.Stats.Running == 0 && engine.Stats.Cancelled == 1);

        // Stopping the enumeration early (a client that goes away) cancels too.
        await foreach (var _ in engine.Submit(new EngineRequest(prompt, Greedy(30000)))) break;
        await WaitFor(() => engine.Stats.Running == 0 && engine.Stats.Cancelled == 2);
        Assert.Equal(0, engine.Stats.SlotsInUse);
    }

    static async Task WaitFor(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++) await Task.Delay(25);
        Assert.True(condition());
    }

    [Fact]
    public async Task AFullQueueRefusesWithQueueFull()
    {
        // The first request runs far longer than the test, however fast the machine, so it holds the only slot.
        using var engine = Engine("llama3", new EngineOptions { MaxBatchSize = 1, MaxModelLen = 32768, MaxQueue = 1 });
        var prompt = Prompt(5, 8, 256);
        using var cts = new CancellationTokenSource();
        var first = engine.Submit(new EngineRequest(prompt, Greedy(30000)), cts.Token);
        var second = engine.Submit(new EngineRequest(prompt, Greedy(2)), cts.Token); // waits in the queue
        var e = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest(prompt, Greedy(2))));
        Assert.Equal(EngineErrorKind.QueueFull, e.Kind);
        cts.Cancel();
        await WaitFor(() => engine.Stats is { Running: 0, Waiting: 0 });
        var after = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(2)));
        Assert.Equal(2, after.Tokens.Count);
        _ = first;
        _ = second;
    }

    [Fact]
    public async Task SamplingFollowsTheSeedAndTopKOneIsGreedy()
    {
        using var engine = Engine("llama3");
        var prompt = Prompt(9, 10, 256);
        var sampling = new SamplingParams { MaxTokens = 20, Temperature = 1.5, Seed = 1234 };
        var a = await engine.GenerateAsync(new EngineRequest(prompt, sampling));
        var b = await engine.GenerateAsync(new EngineRequest(prompt, sampling));
        var c = await engine.GenerateAsync(new EngineRequest(prompt, sampling with { Seed = 99 }));
        Assert.Equal(a.Tokens.Select(t => t.TokenId), b.Tokens.Select(t => t.TokenId));
        Assert.NotEqual(a.Tokens.Select(t => t.TokenId), c.Tokens.Select(t => t.TokenId));
        var greedy = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(20)));
        var topK1 = await engine.GenerateAsync(new EngineRequest(prompt, sampling with { TopK = 1 }));
        var tinyP = await engine.GenerateAsync(new EngineRequest(prompt, sampling with { TopP = 1e-6 }));
        Assert.Equal(greedy.Tokens.Select(t => t.TokenId), topK1.Tokens.Select(t => t.TokenId));
        Assert.Equal(greedy.Tokens.Select(t => t.TokenId), tinyP.Tokens.Select(t => t.TokenId));
    }

    [Fact]
    public async Task LogprobsAreTheModelsLogSoftmax()
    {
        var (model, _) = s_models["qwen2"].Value;
        using var engine = Engine("qwen2");
        var prompt = Golden("qwen2")[0].PromptIds;
        var r = await engine.GenerateAsync(new EngineRequest(prompt, Greedy(3) with { Logprobs = 5 }));
        // Recompute each step's distribution with a plain forward over prompt + tokens so far.
        var ids = prompt.ToList();
        foreach (var t in r.Tokens)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count])).select(1, ids.Count - 1).squeeze(0);
            var logp = logits.log_softmax(-1).data<float>().ToArray();
            Assert.True(Math.Abs(logp[t.TokenId] - t.Logprob) <= 1e-4, $"{logp[t.TokenId]} vs {t.Logprob}");
            Assert.Equal(5, t.Top!.Count);
            Assert.Equal(t.TokenId, t.Top[0].TokenId); // greedy: the chosen token is the most likely
            var order = logp.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5).ToArray();
            for (var k = 0; k < 5; k++) Assert.True(Math.Abs(order[k].v - t.Top[k].Logprob) <= 1e-4);
            ids.Add(t.TokenId);
        }
    }

    [Fact]
    public async Task EmbeddingIsTheMeanOfTheLastHiddenStates()
    {
        var (model, _) = s_models["llama3"].Value;
        using var engine = Engine("llama3");
        var prompt = Prompt(21, 9, 256);
        var v = await engine.EmbedAsync(prompt);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var expected = model.HiddenStates(tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Length])).mean([1]).squeeze(0).data<float>().ToArray();
        Assert.Equal(model.Spec.HiddenSize, v.Length);
        for (var i = 0; i < v.Length; i++) Assert.Equal(expected[i], v[i], 5);
    }

    [Fact]
    public async Task TextDeltasStreamAndAddUpToTheDecodedOutput()
    {
        var (_, tokenizer) = s_models["qwen2"].Value;
        using var engine = Engine("qwen2");
        var prompt = Golden("qwen2")[1].PromptIds;
        var deltas = new List<string>();
        var ids = new List<int>();
        string? finish = null;
        await foreach (var u in engine.Submit(new EngineRequest(prompt, Greedy(16))))
        {
            deltas.Add(u.TextDelta);
            if (u.Token is not null) ids.Add(u.Token.TokenId);
            finish = u.Finish;
        }
        Assert.Equal("length", finish);
        Assert.Equal(16, ids.Count);
        Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), string.Concat(deltas));
        Assert.True(deltas.Count(d => d.Length > 0) > 1);
    }
}

/// <summary>Requests for different LoRA adapters of one base model share the engine's batch.</summary>
public sealed class InferenceEngineAdapterTests
{
    static string Peft(string name) => Path.Combine(TestPaths.Fixtures, "peft", name);

    [Fact]
    public async Task EachRequestGetsItsOwnAdapterInOneBatch()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", "qwen2");
        var names = new[] { "qwen2-lora", "qwen2-rslora", "qwen2-qv" };
        var prompts = Enumerable.Range(0, 6).Select(i => Enumerable.Range(0, 5 + i).Select(j => 4 + (i * 31 + j * 17) % 250).ToArray()).ToArray();
        var choice = new string?[] { null, "qwen2-lora", "qwen2-rslora", "qwen2-lora", "qwen2-qv", null };

        // Expected: each adapter attached the training way (PEFT keys loaded into a fresh model), generating alone.
        var expected = new List<int[]>();
        for (var i = 0; i < prompts.Length; i++)
        {
            using var single = CausalLM.Load(folder, CPU, ScalarType.Float32);
            if (choice[i] is { } a)
            {
                single.AttachLora(PeftAdapter.ReadConfig(Peft(a)).Options);
                PeftAdapter.LoadInto(single, Peft(a));
            }
            expected.Add(new TokenGenerator(single).Generate(prompts[i], new SamplingParams { MaxTokens = 10, Temperature = 0 }).Tokens.ToArray());
        }

        using var model = CausalLM.Load(folder, CPU, ScalarType.Float32);
        using var engine = new InferenceEngine(model, Tokenizer.Load(folder), new EngineOptions { MaxBatchSize = 4, MaxModelLen = 64 },
            names.ToDictionary(n => n, Peft));
        Assert.Equal(names, engine.AdapterNames);
        var results = await Task.WhenAll(prompts.Select((p, i) => engine.GenerateAsync(new EngineRequest(p, new SamplingParams { MaxTokens = 10 }, choice[i]))));
        for (var i = 0; i < prompts.Length; i++)
            Assert.Equal(expected[i], results[i].Tokens.Select(t => t.TokenId).ToArray());
        // The adapters really change the output (the fixtures' adapters are scaled up to make sure of it).
        var baseAnswer = await engine.GenerateAsync(new EngineRequest(prompts[1], new SamplingParams { MaxTokens = 10 }));
        Assert.NotEqual(expected[1], baseAnswer.Tokens.Select(t => t.TokenId).ToArray());
        var unknown = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest([1, 2], new SamplingParams(), "nope")));
        Assert.Equal(EngineErrorKind.UnknownModel, unknown.Kind);

        // Embeddings come from the base model, even right after steps whose rows used adapters.
        using var plain = CausalLM.Load(folder, CPU, ScalarType.Float32);
        using var plainEngine = new InferenceEngine(plain, Tokenizer.Load(folder), new EngineOptions { MaxBatchSize = 4, MaxModelLen = 64 });
        var expectedEmbedding = await plainEngine.EmbedAsync(prompts[2]);
        await engine.GenerateAsync(new EngineRequest(prompts[2], new SamplingParams { MaxTokens = 2 }, "qwen2-lora")); // the last step: one adapter row
        var embedding = await engine.EmbedAsync(prompts[2]);
        for (var i = 0; i < embedding.Length; i++) Assert.Equal(expectedEmbedding[i], embedding[i], 5);
    }
}

/// <summary>OpenAI's presence and frequency penalties, against the rule applied by hand on plain forward passes.</summary>
public sealed class InferenceEnginePenaltyTests
{
    [Theory]
    [InlineData(0.0, 1.5)]
    [InlineData(1.2, 0.0)]
    [InlineData(0.7, 0.9)]
    public async Task PenaltiesFollowTheOpenAiRule(double presence, double frequency)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", "llama3");
        using var model = CausalLM.Load(folder, CPU, ScalarType.Float32);
        var prompt = new[] { 5, 17, 42, 99, 5, 130, 77 };
        const int steps = 24;

        // Expected: greedy on logits − frequency·count − presence·[count > 0], counts over the output so far.
        var ids = prompt.ToList();
        var counts = new Dictionary<int, int>();
        var expected = new List<int>();
        for (var step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count])).select(1, ids.Count - 1).squeeze(0).data<float>().ToArray();
            var best = 0;
            var bestValue = double.NegativeInfinity;
            for (var v = 0; v < logits.Length; v++)
            {
                var c = counts.GetValueOrDefault(v);
                var value = logits[v] - frequency * c - (c > 0 ? presence : 0);
                if (value > bestValue) (best, bestValue) = (v, value);
            }
            expected.Add(best);
            ids.Add(best);
            counts[best] = counts.GetValueOrDefault(best) + 1;
        }

        using var engine = new InferenceEngine(model, Tokenizer.Load(folder), new EngineOptions { MaxBatchSize = 4, MaxModelLen = 64 });
        var plain = engine.GenerateAsync(new EngineRequest(prompt, new SamplingParams { MaxTokens = steps }));
        var penalised = engine.GenerateAsync(new EngineRequest(prompt, new SamplingParams { MaxTokens = steps, PresencePenalty = presence, FrequencyPenalty = frequency }));
        var results = await Task.WhenAll(plain, penalised);
        Assert.Equal(expected, results[1].Tokens.Select(t => t.TokenId).ToArray());
        Assert.NotEqual(results[0].Tokens.Select(t => t.TokenId), results[1].Tokens.Select(t => t.TokenId)); // the penalty changed something
        var bad = Assert.Throws<EngineException>(() => engine.Submit(new EngineRequest(prompt, new SamplingParams { FrequencyPenalty = 2.5 })));
        Assert.Contains("frequency_penalty", bad.Message);
    }
}
