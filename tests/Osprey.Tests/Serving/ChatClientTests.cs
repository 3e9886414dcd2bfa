using Osprey.Inference;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>
/// <see cref="OspreyChatClient"/> on the tiny parity fixtures: greedy replies equal transformers' (infer_golden.json),
/// streaming equals non-streaming, cancellation ends the engine request, concurrent calls equal sequential ones, and
/// the client composes with Microsoft.Extensions.AI's <see cref="ChatClientBuilder"/>.
/// </summary>
public sealed class ChatClientTests
{
    static readonly Lazy<ServedModel> s_qwen2 = new(() => Served("qwen2"));
    static readonly Lazy<ServedModel> s_qwen3 = new(() => Served("qwen3"));

    internal static string FixtureDir(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    internal static ModelLoadOptions Cpu => new() { Device = DeviceSpec.Cpu, DType = "float32", Notice = TextWriter.Null };

    static ServedModel Served(string family) => ServedModel.Load(FixtureDir(family), Cpu, new ServeOptions { Engine = new EngineOptions { MaxBatchSize = 4 } });

    static ServedModel Model(string family) => family == "qwen2" ? s_qwen2.Value : s_qwen3.Value;

    /// <summary>A case of a fixture's infer_golden.json.</summary>
    internal sealed record GoldenCase(string Name, List<ChatMessage> Messages, int MaxTokens, double? RepetitionPenalty, string Response, int PromptTokens, string Finish);

    internal static GoldenCase[] Golden(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir(family), "infer_golden.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c =>
        {
            var settings = c.GetProperty("settings");
            var messages = c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(new ChatRole(m.GetProperty("role").GetString()!), m.GetProperty("content").GetString())).ToList();
            var penalty = settings.GetProperty("repetition_penalty");
            return new GoldenCase(c.GetProperty("name").GetString()!, messages, settings.GetProperty("max_new_tokens").GetInt32(),
                penalty.ValueKind == JsonValueKind.Null ? null : penalty.GetDouble(), c.GetProperty("response").GetString()!,
                c.GetProperty("prompt_ids").GetArrayLength(), c.GetProperty("finish").GetString()!);
        }).ToArray();
    }

    internal static ChatOptions Options(GoldenCase g)
    {
        var options = new ChatOptions { MaxOutputTokens = g.MaxTokens, Temperature = 0 };
        if (g.RepetitionPenalty is double p) options.AdditionalProperties = new() { [OspreyChatClient.RepetitionPenaltyKey] = p };
        return options;
    }

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var family in new[] { "qwen2", "qwen3" })
            foreach (var g in Golden(family)) data.Add(family, g.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task GreedyReplyEqualsTransformers(string family, string name)
    {
        var g = Golden(family).Single(c => c.Name == name);
        using var client = new OspreyChatClient(Model(family));
        var response = await client.GetResponseAsync(g.Messages, Options(g));

        Assert.Equal(g.Response, response.Text);
        Assert.Equal(g.Finish == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(g.PromptTokens, response.Usage!.InputTokenCount);
        Assert.Equal(g.MaxTokens, response.Usage.OutputTokenCount);
        Assert.Equal(g.PromptTokens + g.MaxTokens, response.Usage.TotalTokenCount);
        Assert.Equal(Model(family).Name, response.ModelId);
        Assert.Equal(ChatRole.Assistant, Assert.Single(response.Messages).Role);
    }

    [Fact]
    public async Task StreamingTextEqualsNonStreaming()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        foreach (var g in Golden("qwen2"))
        {
            var whole = await client.GetResponseAsync(g.Messages, Options(g));
            var updates = new List<ChatResponseUpdate>();
            await foreach (var u in client.GetStreamingResponseAsync(g.Messages, Options(g))) updates.Add(u);

            Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
            Assert.Equal(g.Response, string.Concat(updates.Select(u => u.Text)));
            Assert.True(updates.Count(u => u.Text.Length > 0) > 1, "the reply came in one piece, not streamed");
            Assert.All(updates[..^1], u => Assert.Null(u.FinishReason));
            Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
            var usage = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>());
            Assert.Same(usage, updates[^1].Contents.OfType<UsageContent>().Single());
            Assert.Equal(g.PromptTokens, usage.Details.InputTokenCount);
            Assert.Equal(g.MaxTokens, usage.Details.OutputTokenCount);
            Assert.Single(updates.Select(u => u.ResponseId).Distinct());
            // Microsoft.Extensions.AI's own coalescing of the updates gives the same response.
            var coalesced = updates.ToChatResponse();
            Assert.Equal(whole.Text, coalesced.Text);
            Assert.Equal(g.MaxTokens, coalesced.Usage!.OutputTokenCount);
        }
    }

    [Fact]
    public async Task CancellingMidStreamEndsTheEngineRequest()
    {
        // A model of its own, so that the engine's counters see no other test's requests.
        // A reply far longer than the test takes to cancel it, however fast the machine.
        using var client = OspreyChatClient.Load(FixtureDir("qwen2"), Cpu, new ServeOptions { Engine = new EngineOptions { MaxModelLen = 32768 } });
        var engine = client.Model.Engine;
        using var cancel = new CancellationTokenSource();
        var received = new StringBuilder();
        var updates = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Tell me a long story.")],
                               new ChatOptions { MaxOutputTokens = 30000, Temperature = 0 }, cancel.Token))
            {
                received.Append(u.Text);
                if (++updates == 2) cancel.Cancel();
            }
        });
        Assert.Equal(2, updates);

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (engine.Stats is { Running: > 0 } or { Waiting: > 0 } && DateTime.UtcNow < deadline) await Task.Delay(10);
        var stats = engine.Stats;
        Assert.Equal(0, stats.Running);
        Assert.Equal(0, stats.Waiting);
        Assert.Equal(0, stats.SlotsInUse);

        // The engine still serves after the cancelled request.
        var g = Golden("qwen2")[0];
        Assert.Equal(g.Response, (await client.GetResponseAsync(g.Messages, Options(g))).Text);
    }

    [Fact]
    public async Task AnAlreadyCancelledTokenStartsNothing()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        var g = Golden("qwen2")[0];
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(g.Messages, Options(g), new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task ConcurrentCallsGiveTheSequentialAnswers()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        var golden = Golden("qwen2");
        var jobs = Enumerable.Range(0, 8).Select(i => golden[i % golden.Length]).ToArray();
        var sequential = new List<string>();
        foreach (var g in jobs) sequential.Add((await client.GetResponseAsync(g.Messages, Options(g))).Text);

        var concurrent = await Task.WhenAll(jobs.Select((g, i) => Task.Run(async () =>
        {
            if (i % 2 == 0) return (await client.GetResponseAsync(g.Messages, Options(g))).Text;
            var text = new StringBuilder();
            await foreach (var u in client.GetStreamingResponseAsync(g.Messages, Options(g))) text.Append(u.Text);
            return text.ToString();
        })));

        Assert.Equal(sequential, concurrent);
        Assert.Equal(jobs.Select(g => g.Response), concurrent);
    }

    [Fact]
    public async Task ComposesThroughAChatClientBuilderPipeline()
    {
        using var inner = new OspreyChatClient(Model("qwen2"));
        using var client = new ChatClientBuilder(inner).UseFunctionInvocation().Build();
        var g = Golden("qwen2")[1];

        // A tool the tiny random model never calls: the function-invocation layer passes the reply through.
        var calls = 0;
        var options = Options(g);
        options.Tools = [AIFunctionFactory.Create((string city) => { calls++; return "sunny"; }, "get_weather", "The weather in a city.")];
        var response = await client.GetResponseAsync(g.Messages, options);
        Assert.Equal(g.Response, response.Text);
        Assert.Equal(0, calls);

        var metadata = client.GetService<ChatClientMetadata>();
        Assert.NotNull(metadata);
        Assert.Equal("osprey", metadata.ProviderName);
        Assert.Equal(Model("qwen2").Name, metadata.DefaultModelId);
        Assert.Same(inner, client.GetService<OspreyChatClient>());
        Assert.Null(inner.GetService(typeof(OspreyChatClient), serviceKey: "other"));
    }

    [Fact]
    public async Task AnUnknownModelIdIsRefused()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        var e = await Assert.ThrowsAsync<EngineException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { ModelId = "no-such-adapter", MaxOutputTokens = 2 }));
        Assert.Equal(EngineErrorKind.UnknownModel, e.Kind);
        // The base model's own name selects the base model.
        var ok = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { ModelId = Model("qwen2").Name, MaxOutputTokens = 2, Temperature = 0 });
        Assert.Equal(2, ok.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task StopSequencesAndSeedsReachTheEngine()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        var g = Golden("qwen2")[0]; // "W about vqats<>;se* help2ld the to"
        var options = Options(g);
        options.StopSequences = ["vq"];
        var stopped = await client.GetResponseAsync(g.Messages, options);
        Assert.Equal("W about ", stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);

        ChatOptions Sampled(long seed) => new() { MaxOutputTokens = 24, Temperature = 1.5f, TopP = 1, TopK = 0, Seed = seed };
        var a = await client.GetResponseAsync(g.Messages, Sampled(11));
        var b = await client.GetResponseAsync(g.Messages, Sampled(11));
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(g.Response, a.Text);
    }

    [Fact]
    public async Task InstructionsBecomeTheSystemMessage()
    {
        using var client = new OspreyChatClient(Model("qwen2"));
        var g = Golden("qwen2").Single(c => c.Name == "system_question");
        var system = g.Messages.Single(m => m.Role == ChatRole.System).Text;
        var options = Options(g);
        options.Instructions = system;
        var response = await client.GetResponseAsync(g.Messages.Where(m => m.Role != ChatRole.System), options);
        Assert.Equal(g.Response, response.Text);

        var joined = ChatMessageConversion.WithInstructions(
            ChatMessageConversion.FromChatMessages([new ChatMessage(ChatRole.System, "A."), new ChatMessage(ChatRole.User, "q")]), "B.");
        Assert.Equal("A.\n\nB.", joined[0].Content);
    }

    [Fact]
    public void MessagesAndToolsTakeOpenAiShapeForTheTemplate()
    {
        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris", ["days"] = 2 })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "sunny"), new FunctionResultContent("call_2", new { temp = 21 })]),
        };
        var shaped = ChatMessageConversion.FromChatMessages(messages);
        var json = JsonSerializer.Serialize(shaped);
        Assert.Equal(
            """[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"},""" +
            """{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris","days":2}}}]},""" +
            """{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"tool","tool_call_id":"call_2","content":"{\u0022temp\u0022:21}"}]""",
            json);

        var tools = ChatMessageConversion.FromAITools(new ChatOptions { Tools = [AIFunctionFactory.Create((string city) => city, "get_weather", "The weather in a city.")] }.Tools);
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(tools));
        var tool = Assert.Single(doc.RootElement.EnumerateArray().ToArray());
        Assert.Equal("function", tool.GetProperty("type").GetString());
        var function = tool.GetProperty("function");
        Assert.Equal("get_weather", function.GetProperty("name").GetString());
        Assert.Equal("The weather in a city.", function.GetProperty("description").GetString());
        Assert.Equal("string", function.GetProperty("parameters").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        Assert.Null(ChatMessageConversion.FromAITools(new ChatOptions().Tools));
    }

    [Fact]
    public async Task ToolsAndToolCallsRenderThroughAToolAwareTemplate()
    {
        using var dir = new TempDirectory();
        var template = dir.File("tools.jinja");
        File.WriteAllText(template,
            "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}</tools>{% endif %}" +
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}" +
            "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }}({{ c.function.arguments.city }})</tool_call>{% endfor %}{% endif %}" +
            "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
        using var client = OspreyChatClient.Load(FixtureDir("qwen2"), Cpu, new ServeOptions { Template = template });
        var messages = new List<ChatMessage>
        {
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "sunny")]),
        };
        var options = new ChatOptions { MaxOutputTokens = 3, Temperature = 0, Tools = [AIFunctionFactory.Create((string city) => city, "get_weather")] };
        var expected = client.Model.Chat.EncodeRendered(
            "<tools>get_weather;</tools><|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>get_weather(Paris)</tool_call><|im_end|>\n" +
            "<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n");
        var response = await client.GetResponseAsync(messages, options);
        Assert.Equal(expected.Length, response.Usage!.InputTokenCount);
        Assert.Equal(expected, client.Model.EncodeChat(ChatMessageConversion.FromChatMessages(messages), ChatMessageConversion.FromAITools(options.Tools)));
    }
}
