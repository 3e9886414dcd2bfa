using System.Text.Json;
using Osprey.Inference;
using Osprey.Inference.Constraints;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Serving;

/// <summary>
/// Constrained decoding in the engine on the tiny parity models, whose random weights write garbage: with a
/// schema every output must still parse (System.Text.Json) and validate against the schema by an independent
/// validator (NJsonSchema), for greedy and sampled rows sharing a batch with unconstrained ones.
/// </summary>
public sealed class ConstrainedDecodingTests
{
    static readonly Dictionary<string, Lazy<(CausalLM Model, Tokenizer Tokenizer)>> s_models =
        new[] { "qwen2", "llama" }.ToDictionary(f => f, f => new Lazy<(CausalLM, Tokenizer)>(() => Load(f)));

    static (CausalLM, Tokenizer) Load(string family)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = Path.Combine(TestPaths.Fixtures, "parity", family);
        return (CausalLM.Load(folder, CPU, ScalarType.Float32), Tokenizer.Load(folder));
    }

    const string PersonSchema = """
        {
          "type": "object",
          "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 6},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["red", "green", 3]}, "minItems": 1, "maxItems": 3},
            "ok": {"type": "boolean"},
            "note": {"type": ["string", "null"], "maxLength": 3},
            "pick": {"anyOf": [{"type": "number"}, {"const": "none"}]}
          },
          "required": ["name", "age", "tags", "ok", "note", "pick"],
          "additionalProperties": false
        }
        """;

    [Theory]
    [InlineData("qwen2"), InlineData("llama")]
    public async Task OutputsParseAndValidateAgainstTheSchema(string family)
    {
        var (model, tokenizer) = s_models[family].Value;
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 8, MaxModelLen = 640 });
        var grammar = JsonSchemaGrammar.FromSchema(PersonSchema);
        var eos = tokenizer.TokenToId("<|im_end|>") ?? tokenizer.EosToken?.Id ?? 0;
        var prompt = tokenizer.EncodeIds("Describe a person as JSON:");
        SamplingParams Params(int seed, double temperature) => new()
        {
            MaxTokens = 580, Temperature = temperature, Seed = seed, StopTokenIds = [eos], Grammar = grammar,
        };
        // Six constrained rows (one greedy) and two free ones, all in one batch.
        var constrained = Enumerable.Range(0, 6).Select(i => engine.GenerateAsync(new EngineRequest(prompt, Params(i, i == 0 ? 0 : 1.0)))).ToArray();
        var free = Enumerable.Range(0, 2).Select(i => engine.GenerateAsync(new EngineRequest(prompt, new SamplingParams { MaxTokens = 40, Temperature = 1.0, Seed = i }))).ToArray();
        var results = await Task.WhenAll(constrained);
        await Task.WhenAll(free);
        var schema = await NJsonSchema.JsonSchema.FromJsonAsync(PersonSchema);
        foreach (var r in results)
        {
            Assert.True(r.Reason == FinishReason.Eos, $"{family}: the value did not complete within max_tokens ({r.Reason}): {r.Text}");
            try { JsonDocument.Parse(r.Text).Dispose(); }
            catch (JsonException e) { Assert.Fail($"{family}: {e.Message}: {r.Text}\n" + string.Join(" ", r.Tokens.Select(t => $"{t.TokenId}:{JsonSerializer.Serialize(tokenizer.IdToToken(t.TokenId))}"))); }
            var errors = schema.Validate(r.Text);
            Assert.True(errors.Count == 0, $"{family}: NJsonSchema refuses {r.Text}: {string.Join("; ", errors)}");
        }
        Assert.True(results.Select(r => r.Text).Distinct().Count() > 1, "sampled rows should differ");
    }

    [Fact]
    public async Task StartingTheNextMasksAfterTheHandOutGivesTheSameOutputs()
    {
        // InferenceEngine.MasksAfterEmit (OSPREY_MASKS_AFTER_EMIT=1) only moves when the next step's allowed sets start;
        // six constrained rows (above the parallel threshold, so the sets are started early at all), greedy and seeded,
        // beside two free rows, must give the same tokens both ways.
        var (model, tokenizer) = s_models["qwen2"].Value;
        var grammar = JsonSchemaGrammar.FromSchema(PersonSchema);
        var eos = tokenizer.TokenToId("<|im_end|>")!.Value;
        var prompt = tokenizer.EncodeIds("Describe a person as JSON:");
        async Task<string[]> Run(bool after)
        {
            InferenceEngine.MasksAfterEmit = after;
            try
            {
                using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 8, MaxModelLen = 640 });
                var rows = Enumerable.Range(0, 6).Select(i => engine.GenerateAsync(new EngineRequest(prompt,
                    new SamplingParams { MaxTokens = 200, Temperature = i == 0 ? 0 : 1.0, Seed = i, StopTokenIds = [eos], Grammar = grammar })))
                    .Concat(Enumerable.Range(0, 2).Select(i => engine.GenerateAsync(new EngineRequest(prompt, new SamplingParams { MaxTokens = 40, Temperature = 1.0, Seed = 20 + i }))))
                    .ToArray();
                return [.. (await Task.WhenAll(rows)).Select(r => string.Join(",", r.Tokens.Select(t => t.TokenId)))];
            }
            finally { InferenceEngine.MasksAfterEmit = false; }
        }
        var before = await Run(after: false);
        Assert.Equal(before, await Run(after: true));
        Assert.True(before.Take(6).Distinct().Count() > 1, "sampled rows should differ");
    }

    [Fact]
    public async Task JsonObjectModeGivesAnObjectOrAPrefixOfOneAtTheLimit()
    {
        var (model, tokenizer) = s_models["qwen2"].Value;
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 4, MaxModelLen = 256 });
        var eos = tokenizer.TokenToId("<|im_end|>")!.Value;
        var prompt = tokenizer.EncodeIds("JSON:");
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => engine.GenerateAsync(new EngineRequest(prompt,
            new SamplingParams { MaxTokens = 60, Temperature = 1.0, Seed = 10 + i, StopTokenIds = [eos], Grammar = JsonSchemaGrammar.AnyObject }))));
        foreach (var r in results)
        {
            Assert.StartsWith("{", r.Text.TrimStart());
            if (r.Reason == FinishReason.Eos) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(r.Text).RootElement.ValueKind);
            else
            {
                // max_tokens ran out: finish "length", the text a truncated object that no parser takes whole.
                Assert.Equal(FinishReason.Length, r.Reason);
                Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(r.Text));
            }
        }
    }
}
