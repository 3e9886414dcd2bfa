using System.Text.Json.Nodes;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

/// <summary>
/// <see cref="TokenGenerator"/> and <see cref="SamplingParams"/> on the tiny parity fixtures: seeding,
/// sampling limits that reduce to greedy, repetition penalty, every finish reason, streaming, cancellation,
/// validation, and the defaults read from a model folder.
/// </summary>
public sealed class TokenGeneratorTests
{
    static readonly Lazy<CausalLM> s_llama3 = new(() => Load("llama3"));
    static readonly Lazy<CausalLM> s_gemma2 = new(() => Load("gemma2"));

    static readonly int[] s_prompt = [1, 17, 42, 99, 5, 130, 77];

    /// <summary>Greedy, no end-of-sequence ids, 24 new tokens: the base every test varies.</summary>
    static readonly SamplingParams s_greedy = new() { MaxTokens = 24, DoSample = false, StopTokenIds = [], PadTokenId = 0 };

    /// <summary>Sampling that varies from seed to seed: high temperature, no top-k or top-p cut.</summary>
    static readonly SamplingParams s_sampling = s_greedy with { DoSample = true, Temperature = 1.5, TopK = 0, TopP = 1.0 };

    static string FixtureDir(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    static CausalLM Load(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        return CausalLM.Load(FixtureDir(family), CPU, ScalarType.Float32);
    }

    static CausalLM Model(string family) => family switch
    {
        "llama3" => s_llama3.Value,
        "gemma2" => s_gemma2.Value,
        _ => throw new ArgumentOutOfRangeException(nameof(family)),
    };

    static IReadOnlyList<int> Greedy(string family, IReadOnlyList<int>? prompt = null) =>
        new TokenGenerator(Model(family)).Generate(prompt ?? s_prompt, s_greedy).Tokens;

    static char Letter(int id) => (char)('A' + id % 26);

    static string Decode(IReadOnlyList<int> ids) => new(ids.Select(Letter).ToArray());

    public static TheoryData<string> Families() => new() { "llama3", "gemma2" };

    [Theory]
    [MemberData(nameof(Families))]
    public void SameSeedGivesSameTokensAndAnotherSeedDiffers(string family)
    {
        var generator = new TokenGenerator(Model(family));
        var first = generator.Generate(s_prompt, s_sampling with { Seed = 1234 });
        var again = generator.Generate(s_prompt, s_sampling with { Seed = 1234 });
        var other = generator.Generate(s_prompt, s_sampling with { Seed = 98765 });

        Assert.Equal(24, first.Tokens.Count);
        Assert.Equal(FinishReason.Length, first.Reason);
        Assert.Equal(first.Tokens, again.Tokens);
        Assert.NotEqual(first.Tokens, other.Tokens);
        // At temperature 1.5 with no cut-off the samples must not simply be the greedy sequence.
        Assert.NotEqual(Greedy(family), first.Tokens);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TopKOfOneSamplesTheGreedySequence(string family)
    {
        var generator = new TokenGenerator(Model(family));
        var sampled = generator.Generate(s_prompt, s_sampling with { TopK = 1, Seed = 7 });
        Assert.Equal(Greedy(family), sampled.Tokens);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TemperatureZeroWithSamplingIsGreedy(string family)
    {
        var options = s_sampling with { Temperature = 0, Seed = 7 };
        Assert.True(options.IsGreedy);
        var sampled = new TokenGenerator(Model(family)).Generate(s_prompt, options);
        Assert.Equal(Greedy(family), sampled.Tokens);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void HugeRepetitionPenaltyNeverRepeatsATokenAndPenaltyOneIsGreedy(string family)
    {
        var generator = new TokenGenerator(Model(family));
        var greedy = Greedy(family);
        // The plain greedy run repeats something, so the penalty has work to do.
        Assert.True(greedy.Distinct().Count() < greedy.Count || greedy.Intersect(s_prompt).Any(),
            $"{family}: greedy output {string.Join(",", greedy)} repeats nothing; pick a prompt that makes it repeat");

        var penalised = generator.Generate(s_prompt, s_greedy with { RepetitionPenalty = 1e6 }).Tokens;
        Assert.Equal(24, penalised.Count);
        var seen = new HashSet<int>(s_prompt);
        for (int i = 0; i < penalised.Count; i++)
            Assert.True(seen.Add(penalised[i]), $"{family}: token {penalised[i]} at index {i} already occurred in the prompt or output");

        Assert.Equal(greedy, generator.Generate(s_prompt, s_greedy with { RepetitionPenalty = 1.0 }).Tokens);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void RepetitionPenaltyCountsOnlyRealPromptTokensInAPaddedBatch(string family)
    {
        // The short prompt is left-padded with PadTokenId 0; its padding must not be penalised as if seen,
        // and its result must equal the one it gets alone.
        var generator = new TokenGenerator(Model(family));
        var options = s_greedy with { RepetitionPenalty = 1e6, MaxTokens = 12 };
        // The third prompt holds the pad id itself, which must still count as seen.
        IReadOnlyList<IReadOnlyList<int>> prompts = [s_prompt, [9, 31, 4], [0, 9, 31, 4]];
        var batched = generator.Generate(prompts, options);
        for (int i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(generator.Generate(prompts[i], options).Tokens, batched[i].Tokens);
            Assert.Empty(batched[i].Tokens.Intersect(prompts[i]));
        }
    }

    /// <summary>A prompt whose greedy output's 5th token first occurs at index 4, and that output.</summary>
    static (int[] Prompt, IReadOnlyList<int> Output) PromptWithFreshFifthToken(string family)
    {
        var candidates = new int[][] { s_prompt, [3, 8, 250, 61], [200, 14, 14, 90, 33, 7], [45], [120, 121, 122, 123, 124] };
        foreach (var prompt in candidates)
        {
            var output = Greedy(family, prompt);
            if (output.ToList().IndexOf(output[4]) == 4) return (prompt, output);
        }
        throw new InvalidOperationException($"{family}: no candidate prompt gives a greedy output whose 5th token is new");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void EosTokenEndsTheSequenceAndIsIncluded(string family)
    {
        var (prompt, output) = PromptWithFreshFifthToken(family);
        var generator = new TokenGenerator(Model(family));
        var result = generator.Generate(prompt, s_greedy with { StopTokenIds = [output[4]] });
        Assert.Equal(output.Take(5), result.Tokens);
        Assert.Equal(FinishReason.Eos, result.Reason);

        // Any of several ids ends it; ids that never appear change nothing.
        var unused = Enumerable.Range(3, 250).First(id => !output.Contains(id));
        var several = generator.Generate(prompt, s_greedy with { StopTokenIds = [unused, output[4]] });
        Assert.Equal(output.Take(5), several.Tokens);
        var never = generator.Generate(prompt, s_greedy with { StopTokenIds = [unused] });
        Assert.Equal(output, never.Tokens);
        Assert.Equal(FinishReason.Length, never.Reason);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void WithoutEosTheSequenceRunsToMaxNewTokens(string family)
    {
        var generator = new TokenGenerator(Model(family));
        var result = generator.Generate(s_prompt, s_greedy);
        Assert.Equal(24, result.Tokens.Count);
        Assert.Equal(FinishReason.Length, result.Reason);
        var shorter = generator.Generate(s_prompt, s_greedy with { MaxTokens = 9 });
        Assert.Equal(FinishReason.Length, shorter.Reason);
        Assert.Equal(result.Tokens.Take(9), shorter.Tokens);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void StopStringEndsTheSequenceAtTheTokenThatCompletesIt(string family)
    {
        var output = Greedy(family);
        var text = Decode(output);
        // Two letters from the middle of the output; the sequence must end where they first appear.
        var stop = text.Substring(5, 2);
        int end = text.IndexOf(stop, StringComparison.Ordinal) + stop.Length; // tokens to keep
        Assert.True(end <= 7);

        var result = new TokenGenerator(Model(family), Decode).Generate(s_prompt, s_greedy with { Stop = [stop] });
        Assert.Equal(output.Take(end), result.Tokens);
        Assert.Equal(FinishReason.StopString, result.Reason);

        // A stop string that never appears leaves the output as it was.
        var absent = Enumerable.Range(0, 26).Select(i => (char)('A' + i)).First(c => !text.Contains(c)).ToString();
        var untouched = new TokenGenerator(Model(family), Decode).Generate(s_prompt, s_greedy with { Stop = ["#", absent] });
        Assert.Equal(output, untouched.Tokens);
        Assert.Equal(FinishReason.Length, untouched.Reason);
    }

    [Fact]
    public void StopStringLongerThanOneTokenIsFoundAcrossTokens()
    {
        var output = Greedy("llama3");
        var text = Decode(output);
        var stop = text.Substring(10, 6);
        int end = text.IndexOf(stop, StringComparison.Ordinal) + stop.Length;
        var result = new TokenGenerator(Model("llama3"), Decode).Generate(s_prompt, s_greedy with { Stop = ["\u0001", stop] });
        Assert.Equal(output.Take(end), result.Tokens);
        Assert.Equal(FinishReason.StopString, result.Reason);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void StreamingCallbackSeesEveryTokenInOrder(string family)
    {
        var generator = new TokenGenerator(Model(family));
        IReadOnlyList<IReadOnlyList<int>> prompts = [s_prompt, [3, 8, 250, 61], [200, 14, 14, 90, 33, 7, 1, 66, 12]];
        // Make row 0 stop early on a token that first appears at its index 2, so finished rows are covered too.
        var row0 = generator.Generate(prompts[0], s_greedy with { MaxTokens = 10 }).Tokens;
        var eos = row0.First(t => row0.ToList().IndexOf(t) >= 2);
        var options = s_greedy with { MaxTokens = 10, StopTokenIds = [eos] };

        var events = new List<TokenEvent>();
        var results = generator.Generate(prompts, options, events.Add);

        Assert.Equal(3, results.Count);
        Assert.Equal(FinishReason.Eos, results[0].Reason);
        Assert.True(results[0].Tokens.Count < 10);
        for (int s = 0; s < prompts.Count; s++)
        {
            var mine = events.Where(e => e.Sequence == s).ToList();
            Assert.Equal(results[s].Tokens, mine.Select(e => e.TokenId));
            Assert.Equal(Enumerable.Range(0, mine.Count), mine.Select(e => e.Index));
            // Each row alone gives the same tokens as in the batch.
            Assert.Equal(generator.Generate(prompts[s], options).Tokens, results[s].Tokens);
        }
        Assert.Equal(results.Sum(r => r.Tokens.Count), events.Count);
        // Events come step by step: index never decreases, and within one step rows come in order.
        for (int i = 1; i < events.Count; i++)
        {
            var (a, b) = (events[i - 1], events[i]);
            Assert.True(b.Index > a.Index || (b.Index == a.Index && b.Sequence > a.Sequence), $"event {i} {b} came after {a}");
        }
    }

    [Fact]
    public void ZeroMaxNewTokensReturnsEmptyOutputs()
    {
        var generator = new TokenGenerator(Model("llama3"));
        var events = new List<TokenEvent>();
        var results = generator.Generate([s_prompt, [5, 6]], s_greedy with { MaxTokens = 0 }, events.Add);
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.Empty(r.Tokens));
        Assert.All(results, r => Assert.Equal(FinishReason.Length, r.Reason));
        Assert.Empty(events);
        Assert.Empty(generator.Generate(Array.Empty<IReadOnlyList<int>>(), s_greedy));
    }

    [Fact]
    public void CancelledTokenThrows()
    {
        var generator = new TokenGenerator(Model("llama3"));
        Assert.Throws<OperationCanceledException>(() => generator.Generate(s_prompt, s_greedy, cancel: new CancellationToken(true)));
    }

    [Fact]
    public void CancellingDuringGenerationStopsIt()
    {
        var generator = new TokenGenerator(Model("llama3"));
        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.Throws<OperationCanceledException>(() => generator.Generate(s_prompt, s_greedy, e =>
        {
            seen++;
            if (e.Index == 2) cts.Cancel();
        }, cts.Token));
        Assert.Equal(3, seen);
        // The generator is usable again afterwards.
        Assert.Equal(Greedy("llama3"), generator.Generate(s_prompt, s_greedy).Tokens);
    }

    public static TheoryData<string, string> InvalidOptions() => new()
    {
        { "top_p=0", "top_p" },
        { "top_p=1.5", "top_p" },
        { "temperature=-1", "temperature" },
        { "top_k=-1", "top_k" },
        { "max_new_tokens=-1", "max_new_tokens" },
        { "repetition_penalty=0", "repetition_penalty" },
        { "stop without decode", "Decode" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void InvalidOptionsAreRejectedNamingTheProblem(string which, string expected)
    {
        var options = which switch
        {
            "top_p=0" => s_sampling with { TopP = 0 },
            "top_p=1.5" => s_sampling with { TopP = 1.5 },
            "temperature=-1" => s_sampling with { Temperature = -1 },
            "top_k=-1" => s_sampling with { TopK = -1 },
            "max_new_tokens=-1" => s_greedy with { MaxTokens = -1 },
            "repetition_penalty=0" => s_greedy with { RepetitionPenalty = 0 },
            "stop without decode" => s_greedy with { Stop = ["x"] },
            _ => throw new ArgumentOutOfRangeException(nameof(which)),
        };
        var generator = new TokenGenerator(Model("llama3"));
        var e = Assert.Throws<OspreyException>(() => generator.Generate(s_prompt, options));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidPromptsAreRejectedNamingTheProblem()
    {
        var generator = new TokenGenerator(Model("llama3"));
        var empty = Assert.Throws<OspreyException>(() => generator.Generate([s_prompt, []], s_greedy));
        Assert.Contains("prompt 1 is empty", empty.Message, StringComparison.Ordinal);

        var tooBig = Assert.Throws<OspreyException>(() => generator.Generate([1, 2, 256], s_greedy));
        Assert.Contains("256", tooBig.Message, StringComparison.Ordinal);
        Assert.Contains("vocabulary", tooBig.Message, StringComparison.Ordinal);

        var negative = Assert.Throws<OspreyException>(() => generator.Generate([-1, 2], s_greedy));
        Assert.Contains("-1", negative.Message, StringComparison.Ordinal);

        // The largest valid id is fine.
        Assert.Equal(3, generator.Generate([255], s_greedy with { MaxTokens = 3 }).Tokens.Count);
    }

    [Fact]
    public void FromModelCombinesEosIdsAndReadsGenerationConfig()
    {
        using var dir = new TempDirectory();
        File.Copy(Path.Combine(FixtureDir("llama3"), "config.json"), dir.File("config.json"));
        File.WriteAllText(dir.File("generation_config.json"),
            """{ "eos_token_id": [2, 7], "do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.1, "max_new_tokens": 33 }""");

        var spec = ModelRegistry.ReadSpec(dir.Path);
        var options = SamplingParams.FromModel(spec, GenerationConfigFile.Read(dir.Path));
        Assert.Equal(new[] { 2, 7 }, options.StopTokenIds);
        Assert.True(options.DoSample);
        Assert.Equal(0.6, options.Temperature);
        Assert.Equal(0.9, options.TopP);
        Assert.Equal(20, options.TopK);
        Assert.Equal(1.1, options.RepetitionPenalty);
        Assert.Equal(33, options.MaxTokens);
        Assert.Equal(0, options.PadTokenId); // config.json pad_token_id
        Assert.False(options.IsGreedy);

        // config.json's own eos id comes first and is kept when generation_config.json lacks it.
        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        config["eos_token_id"] = 9;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        var union = SamplingParams.FromModel(ModelRegistry.ReadSpec(dir.Path), GenerationConfigFile.Read(dir.Path));
        Assert.Equal(new[] { 9, 2, 7 }, union.StopTokenIds);
    }

    [Fact]
    public void FromModelWithoutGenerationConfigUsesTransformersDefaults()
    {
        var spec = ModelRegistry.ReadSpec(FixtureDir("gemma2"));
        var options = SamplingParams.FromModel(spec, null);
        Assert.Equal(new[] { 2 }, options.StopTokenIds);
        Assert.False(options.DoSample);
        Assert.Equal(1.0, options.Temperature);
        Assert.Equal(50, options.TopK);
        Assert.Equal(1.0, options.TopP);
        Assert.Equal(1.0, options.RepetitionPenalty);
        Assert.Equal(256, options.MaxTokens);
        Assert.Equal(0, options.PadTokenId);
        Assert.True(options.IsGreedy);
    }

    [Fact]
    public void InvalidGenerationConfigNamesTheFile()
    {
        using var dir = new TempDirectory();
        Assert.Null(GenerationConfigFile.Read(dir.Path));
        File.WriteAllText(dir.File("generation_config.json"), "{ \"do_sample\": maybe }");
        var e = Assert.Throws<OspreyException>(() => GenerationConfigFile.Read(dir.Path));
        Assert.Contains("generation_config.json", e.Message, StringComparison.Ordinal);
    }
}
