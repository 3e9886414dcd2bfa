using Osprey.Inference.Constraints;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// The serving benchmark with a grammar (what tools/structured_bench.sh times on the GPU): each concurrency gives
/// a constrained round and then a free-text round of the same rows at the same lengths, so their throughputs
/// compare like for like; and a bad --response_format names the file and the fix. No timings are asserted.
/// </summary>
public sealed class StructuredBenchmarkTests
{
    /// <summary>The qwen2 parity fixture and a grammar whose value completes in a few tokens, so rows end before max_new_tokens and the lengths differ from it.</summary>
    static (CausalLM Model, Tokenizer Tokenizer, JsonSchemaGrammar Grammar) YesOrNo()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", "qwen2");
        return (CausalLM.Load(folder, CPU, ScalarType.Float32), Tokenizer.Load(folder), JsonSchemaGrammar.FromSchema("""{"enum":["yes","no"]}"""));
    }

    [Fact]
    public void AConstrainedRoundIsFollowedByFreeTextOfTheSameLengths()
    {
        var (model, tokenizer, grammar) = YesOrNo();
        using var _ = model;
        var results = EngineBenchmark.Run(model, tokenizer, [2], promptLength: 4, newTokens: 48, cudaGraphs: false, grammar: grammar, responseFormat: "yn").ToList();
        Assert.Equal(2, results.Count);
        Assert.Equal("yn", results[0].ResponseFormat);
        Assert.Null(results[1].ResponseFormat);
        // Each of the 2 rows writes at most 16 whitespace bytes before the value (JsonMachine.MaxWhitespace) and
        // "yes" or "no" in 1 to 5 tokens (quote, letters, quote): at most 21 tokens, short of 48.
        Assert.InRange(results[0].GeneratedTokens, 2, 42);
        Assert.Equal(results[0].GeneratedTokens, results[1].GeneratedTokens);
    }

    [Fact]
    public void PairsAlternateConstrainedAndFreeTextRoundsOnTheSamePrompts()
    {
        var (model, tokenizer, grammar) = YesOrNo();
        using var _ = model;
        var log = new StringWriter();
        var results = EngineBenchmark.Run(model, tokenizer, [2], promptLength: 4, newTokens: 48, cudaGraphs: false, log: log, grammar: grammar, responseFormat: "yn", pairs: 3).ToList();
        Assert.Equal(["yn", null, "yn", null, "yn", null], results.Select(r => r.ResponseFormat));
        // Greedy rows on the same prompts: every constrained round writes the same tokens, every free-text round
        // is held to those lengths.
        Assert.All(results, r => Assert.Equal(results[0].GeneratedTokens, r.GeneratedTokens));
        var lines = log.ToString().Split('\n');
        var digests = lines.Where(l => l.StartsWith("tokens: digest", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToArray();
        Assert.Equal(6, digests.Length);
        Assert.Equal([digests[0], digests[0], digests[0]], new[] { digests[0], digests[2], digests[4] });
        Assert.Equal([digests[1], digests[1], digests[1]], new[] { digests[1], digests[3], digests[5] });
        Assert.NotEqual(digests[0], digests[1]);
        // Each round reports its .NET side.
        Assert.Equal(6, lines.Count(l => l.StartsWith("host: ", StringComparison.Ordinal) && l.Contains(" MB allocated, ", StringComparison.Ordinal)));
        Assert.Contains("at least 1", Assert.Throws<OspreyException>(() => EngineBenchmark.Run(model, tokenizer, [2], 4, 8, grammar: grammar, pairs: 0).ToList()).Message);
    }

    [Fact]
    public void ResponseFormatIsJsonObjectOrASchemaFile()
    {
        Assert.Same(JsonSchemaGrammar.AnyObject, EngineBenchmark.ResponseFormat("json_object"));
        using var dir = new TempDirectory();
        var bad = Path.Combine(dir.Path, "s.json");
        File.WriteAllText(bad, "{\"type\": \"object\",\n \"properties\": {\"n\": {\"minimum\": 1}}}");
        var e = Assert.Throws<OspreyException>(() => EngineBenchmark.ResponseFormat(bad));
        Assert.Contains(bad, e.Message);
        Assert.Contains("schema.properties.n.minimum", e.Message);
        File.WriteAllText(bad, "{\"type\":\n\"object\",,}");
        Assert.Contains("line 2", Assert.Throws<OspreyException>(() => EngineBenchmark.ResponseFormat(bad)).Message);
        Assert.Contains("json_object", Assert.Throws<OspreyException>(() => EngineBenchmark.ResponseFormat(Path.Combine(dir.Path, "none.json"))).Message);
    }
}
