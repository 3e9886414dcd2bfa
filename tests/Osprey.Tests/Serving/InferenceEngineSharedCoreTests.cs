using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// The engine and <see cref="TokenGenerator"/> share one generation core: the same <see cref="SamplingParams"/>
/// give the same tokens (sampled with a seed, with penalties and logit bias), the same stop-string rule and the
/// same finish reasons; a missing max_tokens is the room the prompt leaves in either.
/// </summary>
public sealed class InferenceEngineSharedCoreTests
{
    static readonly Lazy<(CausalLM Model, Tokenizer Tokenizer)> s_llama3 = new(() =>
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", "llama3");
        return (CausalLM.Load(folder, CPU, ScalarType.Float32), Tokenizer.Load(folder));
    });

    static readonly int[] s_prompt = [1, 17, 42, 99, 5, 130, 77];

    [Theory]
    [InlineData(1.5, 0, 1.0, 1.0, 0.0, false)]
    [InlineData(0.8, 40, 0.9, 1.0, 0.0, false)]
    [InlineData(1.2, 0, 0.7, 1.3, 0.5, true)]
    [InlineData(0.0, 0, 1.0, 1.2, 1.0, true)]
    public async Task OneRequestGetsTheSameTokensFromTheEngineAndTheGenerator(double temperature, int topK, double topP, double repetition, double frequency, bool bias)
    {
        var (model, tokenizer) = s_llama3.Value;
        var sampling = new SamplingParams
        {
            MaxTokens = 16, Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = repetition,
            FrequencyPenalty = frequency, Seed = 1234, LogitBias = bias ? new Dictionary<int, double> { [5] = 3.0, [17] = -50 } : null,
        };
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 2, MaxModelLen = 64 });
        var served = await engine.GenerateAsync(new EngineRequest(s_prompt, sampling));

        var generated = new TokenGenerator(model).Generate(s_prompt, sampling);

        Assert.Equal(generated.Tokens, served.Tokens.Select(t => t.TokenId));
        Assert.Equal(generated.Reason, served.Reason);
    }

    [Fact]
    public async Task StopStringsAndFinishReasonsAgree()
    {
        var (model, tokenizer) = s_llama3.Value;
        string Decode(IReadOnlyList<int> ids) => tokenizer.Decode(ids, skipSpecialTokens: true);
        var greedy = new TokenGenerator(model).Generate(s_prompt, new SamplingParams { MaxTokens = 16 });
        var text = Decode(greedy.Tokens);
        var stop = text.Substring(text.Length / 2, 2);
        var sampling = new SamplingParams { MaxTokens = 16, Stop = [stop] };
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 2, MaxModelLen = 64 });

        var served = await engine.GenerateAsync(new EngineRequest(s_prompt, sampling));
        var generated = new TokenGenerator(model, Decode).Generate(s_prompt, sampling);

        Assert.Equal(FinishReason.StopString, generated.Reason);
        Assert.Equal(FinishReason.StopString, served.Reason);
        Assert.Equal("stop", served.Finish);
        Assert.Equal(generated.Tokens, served.Tokens.Select(t => t.TokenId));
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], served.Text);
        Assert.Equal(FinishReason.Length, greedy.Reason);
    }

    [Fact]
    public async Task AMissingMaxTokensIsTheRoomThePromptLeaves()
    {
        var (model, tokenizer) = s_llama3.Value;
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 2, MaxModelLen = 20 });
        var served = await engine.GenerateAsync(new EngineRequest(s_prompt, new SamplingParams()));

        Assert.Equal(20 - s_prompt.Length, served.Tokens.Count);
        Assert.Equal("length", served.Finish);
        Assert.Equal(13, new SamplingParams().NewTokenLimit(7, 20));
        Assert.Equal(5, new SamplingParams { MaxTokens = 5 }.NewTokenLimit(7, 20));
    }

    [Fact]
    public void FinishReasonsHaveOpenAisNames()
    {
        Assert.Equal("stop", FinishReason.Eos.OpenAiName());
        Assert.Equal("stop", FinishReason.StopString.OpenAiName());
        Assert.Equal("length", FinishReason.Length.OpenAiName());
        Assert.Null(new EngineUpdate().Finish);
        Assert.Equal("length", new EngineUpdate { Reason = FinishReason.Length }.Finish);
    }
}
