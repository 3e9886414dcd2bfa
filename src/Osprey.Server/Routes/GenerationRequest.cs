using Osprey.Inference;
using Osprey.Inference.Constraints;
using System.Globalization;
using System.Text.Json;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>What a chat or completions request asks for besides its prompt, read and checked once.</summary>
internal sealed record GenerationRequest(string ModelName, string? Adapter, SamplingParams Sampling, int N, bool Stream, bool IncludeUsage, bool Logprobs, int TopLogprobs)
{
    /// <summary>The most choices one request may ask for (n, or prompts times n).</summary>
    public const int MaxChoices = 64;

    /// <summary>The highest temperature OpenAI's API accepts.</summary>
    public const double MaxTemperature = 2;

    /// <summary>Reads the common fields; chat and completions differ in max_completion_tokens and in what logprobs means.</summary>
    public static GenerationRequest Read(RequestFields f, ServedModel model, bool chat)
    {
        var name = f.String("model");
        string? adapter = model.AdapterFor(name);
        var maxTokens = (chat ? f.Int("max_completion_tokens", 1) : null) ?? f.Int("max_tokens", 1);
        var n = f.Int("n", 1, MaxChoices) ?? 1;
        var stream = f.Bool("stream") ?? false;
        var includeUsage = false;
        if (f.Get("stream_options") is { } so)
        {
            var sf = new RequestFields(so, "stream_options");
            includeUsage = sf.Bool("include_usage") ?? false;
            if (!stream && includeUsage) throw ApiException.Bad("'stream_options' applies only when 'stream' is true.", "stream_options");
        }
        bool logprobs;
        int top;
        if (chat)
        {
            logprobs = f.Bool("logprobs") ?? false;
            top = f.Int("top_logprobs", 0, SamplingParams.MaxTopLogprobs) ?? 0;
            if (f.Get("top_logprobs") is not null && !logprobs) throw ApiException.Bad("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs");
        }
        else
        {
            // /v1/completions: logprobs is the number of alternatives per token.
            var k = f.Int("logprobs", 0, SamplingParams.MaxTopLogprobs);
            logprobs = k is not null;
            top = k ?? 0;
        }
        var logitBias = LogitBias(f);
        // OpenAI's range; the engine itself accepts more (the CLI's --temperature), but an API client gets OpenAI's 400.
        var temperature = f.Double("temperature", 0, MaxTemperature);
        var sampling = model.Sampling(maxTokens, temperature, f.Double("top_p"), f.Int("top_k", -1),
            f.Double("repetition_penalty"), f.Long("seed"), f.Strings("stop"), logprobs ? top : null, f.Bool("ignore_eos") ?? false,
            f.Double("presence_penalty"), f.Double("frequency_penalty"), logitBias);
        // A forced tool call is the whole reply, so its grammar takes the place of response_format's (which is still checked).
        if (chat) sampling = sampling with { Grammar = ResponseFormat(f) is var format && ChatInput.ForcedCall(f) is { } call ? call : format };
        try
        {
            sampling.Validate();
        }
        catch (EngineException e) when (e.Kind == EngineErrorKind.InvalidRequest)
        {
            throw ApiException.Bad(e.Message, Field(e.Message, chat));
        }
        return new GenerationRequest(name ?? model.Name, adapter, sampling, n, stream, includeUsage, logprobs, top);
    }

    /// <summary>
    /// The request field a <see cref="SamplingParams.Validate"/> message is about: each starts with the field's name.
    /// In /v1/completions the count of alternatives is the field "logprobs".
    /// </summary>
    static string? Field(string message, bool chat)
    {
        var first = message.Split(' ', 2)[0];
        return first switch
        {
            "top_logprobs" => chat ? "top_logprobs" : "logprobs",
            "max_tokens" or "temperature" or "top_p" or "top_k" or "repetition_penalty" or "presence_penalty"
                or "frequency_penalty" or "logit_bias" or "stop" => first,
            _ => null,
        };
    }

    /// <summary>
    /// OpenAI's response_format: "text" (free), "json_object" (any JSON object) or "json_schema" (a value of the
    /// given schema), enforced by constrained decoding. A schema keyword outside the supported subset is a 400
    /// whose param is the keyword's path (response_format.json_schema.schema.properties.age.minimum).
    /// </summary>
    static JsonSchemaGrammar? ResponseFormat(RequestFields f)
    {
        const string example = "{\"type\": \"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}";
        if (f.Get("response_format") is not { } v || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            throw ApiException.Bad($"'response_format' must be an object with a \"type\", such as {example}.", "response_format");
        switch (type.GetString())
        {
            case "text":
                return null;
            case "json_object":
                return JsonSchemaGrammar.AnyObject;
            case "json_schema":
                if (!v.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object)
                    throw ApiException.Bad($"'response_format.json_schema' must be an object such as {{\"name\": \"answer\", \"schema\": {{...}}}}.", "response_format.json_schema");
                if (!js.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || name.GetString()!.Length == 0)
                    throw ApiException.Bad("'response_format.json_schema.name' must be a non-empty string.", "response_format.json_schema.name");
                if (js.TryGetProperty("strict", out var strict) && strict.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
                    throw ApiException.Bad("'response_format.json_schema.strict' must be true or false.", "response_format.json_schema.strict");
                if (!js.TryGetProperty("schema", out var schema)) return JsonSchemaGrammar.FromSchema("{}");
                try
                {
                    // Strict or not, the output is held to the schema: constrained decoding cannot follow it loosely.
                    return JsonSchemaGrammar.FromSchema(schema);
                }
                catch (JsonSchemaException e)
                {
                    throw ApiException.Bad($"response_format.json_schema.{e.Message}", "response_format.json_schema." + e.Path);
                }
            default:
                throw ApiException.Bad($"'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", got '{type.GetString()}'.", "response_format.type");
        }
    }

    /// <summary>OpenAI's logit_bias: an object whose keys are token ids (as strings) and whose values are numbers.</summary>
    static Dictionary<int, double>? LogitBias(RequestFields f)
    {
        if (f.Get("logit_bias") is not { } v || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Object) throw ApiException.Bad("'logit_bias' must be an object mapping token ids to numbers.", "logit_bias");
        var bias = new Dictionary<int, double>();
        foreach (var p in v.EnumerateObject())
        {
            if (!int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var token))
                throw ApiException.Bad($"'logit_bias' keys must be token ids, got '{p.Name}'.", "logit_bias");
            if (p.Value.ValueKind != JsonValueKind.Number) throw ApiException.Bad($"'logit_bias' value for token {token} must be a number.", "logit_bias");
            bias[token] = p.Value.GetDouble();
        }
        return bias.Count == 0 ? null : bias;
    }

    /// <summary>
    /// Refuses, as OpenAI does (400, <c>context_length_exceeded</c>, param the prompt's field), a request whose prompt
    /// plus max_tokens is more than max_model_len; without max_tokens the reply gets whatever room is left.
    /// </summary>
    public void CheckFits(IReadOnlyList<int[]> prompts, int maxModelLen, string field)
    {
        if (Sampling.MaxTokens is not { } asked) return;
        var what = field == "messages" ? "the messages" : $"the {field}";
        foreach (var prompt in prompts)
            if ((long)prompt.Length + asked > maxModelLen)
                throw ApiException.Bad($"This server's max_model_len is {maxModelLen} tokens, but the request asks for {(long)prompt.Length + asked} " +
                    $"({prompt.Length} in {what}, {asked} in the completion); shorten {what} or lower max_tokens.", field, "context_length_exceeded");
    }

    /// <summary>N engine requests per prompt; with a seed, choice i samples with seed + i so the choices differ.</summary>
    public IReadOnlyList<EngineRequest> EngineRequests(IReadOnlyList<int[]> prompts)
    {
        var list = new List<EngineRequest>();
        foreach (var prompt in prompts)
            for (var i = 0; i < N; i++)
                list.Add(new EngineRequest(prompt, Sampling.Seed is { } s ? Sampling with { Seed = s + i } : Sampling, Adapter));
        return list;
    }
}
