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
        // The masks' bit-value table is made once, not at every step (on CUDA making it waits for the forward pass).
        Assert.True(engine.DecodeSteps > 10, $"only {engine.DecodeSteps} decode steps ran");
        Assert.Equal(1, engine.MaskTablesBuilt);
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

    [Fact]
    public async Task AStringIsWellFormedUtf8EvenWhenTheModelPrefersLoneContinuationBytes()
    {
        // Byte 0x80 (biased up most) is a UTF-8 continuation byte; 0xE2 (biased up less) a three-byte lead. Before the
        // automaton tracked characters, 0x80 was allowed anywhere in a string, so this row wrote it until max_tokens:
        // a string of maxLength 4 that never closed, each byte decoding to U+FFFD. Now 0x80 may come only inside a
        // character: the row writes E2 80 80 (U+2000, EN QUAD) until the string is full, and then it closes.
        // The parity fixtures' tokenizers have no byte tokens: Qwen3's byte-level tokenizer with a one-layer random
        // model over its vocabulary.
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var tokenizer = Tokenizer.Load(Osprey.Tests.Tokenization.NpmTokenizers.Folder("qwen3"));
        using var model = RandomModel(151936);
        using var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = 2, MaxModelLen = 256 });
        var single = new Dictionary<byte, int>();
        for (var id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.TokenBytes(id) is [var b] && !single.ContainsKey(b)) single[b] = id;
        const string Schema = """{"type":"object","properties":{"s":{"type":"string","maxLength":4}},"required":["s"],"additionalProperties":false}""";
        var eos = tokenizer.TokenToId("<|im_end|>")!.Value;
        var r = await engine.GenerateAsync(new EngineRequest(tokenizer.EncodeIds("JSON:"), new SamplingParams
        {
            MaxTokens = 120, Temperature = 0, StopTokenIds = [eos], Grammar = JsonSchemaGrammar.FromSchema(Schema),
            LogitBias = new Dictionary<int, double> { [single[0x80]] = 100, [single[0xE2]] = 50 },
        }));
        Assert.True(r.Reason == FinishReason.Eos, $"the value did not complete ({r.Reason}): {r.Text}");
        Assert.DoesNotContain('\uFFFD', r.Text);
        // The opening quote comes in a token that may bring the first character along; every character after it
        // is the biased lead with two 0x80s, and the fourth fills the string.
        var value = JsonDocument.Parse(r.Text).RootElement.GetProperty("s").GetString()!;
        Assert.Equal(4, value.EnumerateRunes().Count());
        Assert.EndsWith("\u2000\u2000\u2000", value);
        Assert.Equal(2 * value.Count(c => c == '\u2000'), r.Tokens.Count(t => t.TokenId == single[0x80]));
        var errors = (await NJsonSchema.JsonSchema.FromJsonAsync(Schema)).Validate(r.Text);
        Assert.True(errors.Count == 0, $"NJsonSchema refuses {r.Text}: {string.Join("; ", errors)}");
    }

    /// <summary>A one-layer Llama-shaped model with random weights over <paramref name="vocab"/> tokens, in memory.</summary>
    static CausalLM RandomModel(int vocab)
    {
        var config = $$"""
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": {{vocab}}, "hidden_size": 16,
             "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
             "head_dim": 8, "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-06,
             "rope_theta": 10000.0, "tie_word_embeddings": true, "dtype": "float32"}
            """;
        var spec = new Osprey.Models.Llama.LlamaFamily().ReadSpec(JsonDocument.Parse(config), "test config.json");
        var model = new CausalLM(spec, ScalarType.Float32, CPU);
        var rng = new Generator(7, CPU);
        using (no_grad())
            foreach (var (name, t) in model.state_dict())
                t.copy_(name.EndsWith("norm.weight", StringComparison.Ordinal) ? ones_like(t) : 0.5 * randn(t.shape, generator: rng));
        return model;
    }
}
