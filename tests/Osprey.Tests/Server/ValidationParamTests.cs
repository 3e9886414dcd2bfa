using System.Text.Json;

namespace Osprey.Tests.Server;

/// <summary>
/// Every validation error a request can trigger, on every route, names the field at fault in <c>param</c>, with the
/// JSON path written as OpenAI writes it (<c>messages[1].content</c>, <c>stream_options.include_usage</c>); issue 15
/// found 23 range errors with <c>param: null</c>. Only errors about the body as a whole (not JSON, not an object)
/// have no field, and OpenAI answers those with a null param too.
/// </summary>
public sealed class ValidationParamTests(Qwen2ServerFixture fixture) : IClassFixture<Qwen2ServerFixture>
{
    readonly TestServer _server = fixture.Server;

    const string Chat = "/v1/chat/completions", Completions = "/v1/completions", Embeddings = "/v1/embeddings";
    const string User = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
    const string Prompt = "\"prompt\": \"hi\"";

    /// <summary>(route, body fields, the param OpenAI's path style gives).</summary>
    public static TheoryData<string, string, string> Cases()
    {
        var bias = string.Join(", ", Enumerable.Range(0, 301).Select(i => $"\"{i}\": 1"));
        var manyStops = "[" + string.Join(", ", Enumerable.Range(0, 17).Select(i => $"\"s{i}\"")) + "]";
        var manyPrompts = "[" + string.Join(", ", Enumerable.Range(0, 65).Select(_ => "\"a\"")) + "]";
        var data = new TheoryData<string, string, string>
        {
            // The conversation.
            { Chat, "\"max_tokens\": 1", "messages" },
            { Chat, "\"messages\": []", "messages" },
            { Chat, "\"messages\": \"hi\"", "messages" },
            { Chat, "\"messages\": [1]", "messages[0]" },
            { Chat, "\"messages\": [{\"content\": \"hi\"}]", "messages[0].role" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"bogus\", \"content\": \"x\"}]", "messages[1].role" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": 5}]", "messages[0].content" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": [\"hi\"]}]", "messages[0].content[0]" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": [{\"text\": \"hi\"}]}]", "messages[0].content[0].type" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"image_url\", \"image_url\": {\"url\": \"x\"}}]}]", "messages[0].content[1].type" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]", "messages[0].content[0].text" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": 5}]", "messages[1].tool_calls" },
            { Chat, $"{User}, \"tools\": 5", "tools" },
            { Chat, $"{User}, \"tools\": [{{\"type\": \"function\", \"function\": {{\"name\": \"f\"}}}}, 1]", "tools[1]" },
            { Chat, $"{User}, \"tools\": [{{\"type\": \"function\", \"function\": {{\"name\": \"f\"}}}}], \"tool_choice\": 5", "tool_choice" },
            { Chat, $"{User}, \"tools\": [{{\"type\": \"function\", \"function\": {{\"name\": \"f\"}}}}], \"tool_choice\": {{\"type\": \"function\", \"function\": {{\"name\": \"g\"}}}}", "tool_choice" },
            // Chat-only fields.
            { Chat, $"{User}, \"max_completion_tokens\": 0", "max_completion_tokens" },
            { Chat, $"{User}, \"logprobs\": 1", "logprobs" },
            { Chat, $"{User}, \"logprobs\": true, \"top_logprobs\": 21", "top_logprobs" },
            { Chat, $"{User}, \"top_logprobs\": 2", "top_logprobs" },
            { Chat, $"{User}, \"max_tokens\": 1000", "messages" },
            { Chat, "\"messages\": [{\"role\": \"user\", \"content\": \"" + string.Concat(Enumerable.Repeat("Tell me a long story. ", 40)) + "\"}]", "messages" },
            // The prompt and input shapes.
            { Completions, "\"max_tokens\": 1", "prompt" },
            { Completions, "\"prompt\": []", "prompt" },
            { Completions, "\"prompt\": 5", "prompt" },
            { Completions, "\"prompt\": [\"a\", 1]", "prompt[1]" },
            { Completions, "\"prompt\": [[1, 2], \"a\"]", "prompt[1]" },
            { Completions, "\"prompt\": [[1, \"x\"]]", "prompt[0][1]" },
            { Completions, "\"prompt\": [1, 1.5]", "prompt[1]" },
            { Completions, "\"prompt\": [1, 99999]", "prompt[1]" },
            { Completions, "\"prompt\": [[1], [2, -1]]", "prompt[1][1]" },
            { Completions, "\"prompt\": [[1], []]", "prompt" },
            { Completions, $"\"prompt\": {manyPrompts}", "prompt" },
            { Completions, "\"prompt\": [[1], [2]], \"n\": 40", "n" },
            { Completions, $"{Prompt}, \"echo\": true", "echo" },
            { Completions, $"{Prompt}, \"suffix\": \"x\"", "suffix" },
            { Completions, $"{Prompt}, \"best_of\": 2", "best_of" },
            { Completions, $"{Prompt}, \"logprobs\": 21", "logprobs" },
            { Completions, $"{Prompt}, \"logprobs\": true", "logprobs" },
            { Completions, "\"prompt\": [1, 2], \"max_tokens\": 127", "prompt" },
            { Embeddings, "\"model\": \"\"", "input" },
            { Embeddings, "\"input\": 5", "input" },
            { Embeddings, "\"input\": [[1, 99999]]", "input[0][1]" },
            { Embeddings, "\"input\": [[1], []]", "input" },
            { Embeddings, "\"input\": \"hi\", \"encoding_format\": \"int8\"", "encoding_format" },
            { Embeddings, "\"input\": \"hi\", \"dimensions\": 3", "dimensions" },
            { Embeddings, "\"input\": \"hi\", \"dimensions\": 0", "dimensions" },
            { Embeddings, "\"input\": \"hi\", \"model\": 5", "model" },
        };
        // The sampling fields, the same on chat and completions: wrong type and out of range.
        foreach (var (route, prompt) in new[] { (Chat, User), (Completions, Prompt) })
        {
            foreach (var (fields, param) in new[]
            {
                ("\"model\": 5", "model"),
                ("\"max_tokens\": 0", "max_tokens"),
                ("\"max_tokens\": \"x\"", "max_tokens"),
                ("\"max_tokens\": 1.5", "max_tokens"),
                ("\"n\": 0", "n"),
                ("\"n\": 65", "n"),
                ("\"stream\": \"yes\"", "stream"),
                ("\"stream_options\": 5", "stream_options"),
                ("\"stream\": true, \"stream_options\": {\"include_usage\": \"x\"}", "stream_options.include_usage"),
                ("\"stream_options\": {\"include_usage\": true}", "stream_options"),
                ("\"temperature\": \"hot\"", "temperature"),
                ("\"temperature\": -1", "temperature"),
                ("\"temperature\": 2.5", "temperature"),
                ("\"temperature\": 1e999", "temperature"),
                ("\"top_p\": 0", "top_p"),
                ("\"top_p\": 1.5", "top_p"),
                ("\"top_k\": -2", "top_k"),
                ("\"top_k\": \"x\"", "top_k"),
                ("\"repetition_penalty\": 0", "repetition_penalty"),
                ("\"presence_penalty\": 3", "presence_penalty"),
                ("\"frequency_penalty\": -3", "frequency_penalty"),
                ("\"seed\": \"x\"", "seed"),
                ("\"stop\": [1]", "stop"),
                ("\"stop\": 5", "stop"),
                ("\"stop\": [\"\"]", "stop"),
                ($"\"stop\": {manyStops}", "stop"),
                ("\"ignore_eos\": \"x\"", "ignore_eos"),
                ("\"logit_bias\": []", "logit_bias"),
                ("\"logit_bias\": {\"x\": 1}", "logit_bias"),
                ("\"logit_bias\": {\"1\": \"x\"}", "logit_bias"),
                ("\"logit_bias\": {\"1\": 1000}", "logit_bias"),
                ("\"logit_bias\": {\"99999\": 1}", "logit_bias"),
                ($"\"logit_bias\": {{{bias}}}", "logit_bias"),
            })
                data.Add(route, $"{prompt}, \"max_tokens\": 1, {fields}".Replace("\"max_tokens\": 1, \"max_tokens\"", "\"max_tokens\"", StringComparison.Ordinal), param);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EveryValidationErrorNamesItsField(string route, string fields, string param)
    {
        var (status, body, text) = await _server.PostAsync(route, "{" + fields + "}");
        Assert.True(status == 400, $"{status} {text}");
        var error = TestServer.AssertError(body);
        Assert.Equal(JsonValueKind.String, error.GetProperty("param").ValueKind);
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData(Chat, "{\"messages\": [")]
    [InlineData(Chat, "[1, 2]")]
    [InlineData(Completions, "\"hi\"")]
    public async Task OnlyErrorsAboutTheWholeBodyHaveNoParam(string route, string json)
    {
        var (status, body, _) = await _server.PostAsync(route, json);
        Assert.Equal(400, status);
        Assert.Equal(JsonValueKind.Null, TestServer.AssertError(body).GetProperty("param").ValueKind);
    }
}
