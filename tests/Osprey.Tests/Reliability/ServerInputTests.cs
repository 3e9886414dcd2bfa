using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Osprey.Serving;
using Osprey.Tests.Server;

namespace Osprey.Tests.Reliability;

/// <summary>Hostile request bodies: megabyte prompts, invalid text, unknown roles, out-of-range fields (issue 15).</summary>
[Collection(nameof(MeasuresProcessMemoryCollection))]
public sealed class ServerInputTests
{
    static readonly EngineOptions Small = new() { MaxBatchSize = 2, MaxModelLen = 64 };

    [Fact]
    public async Task MegabytePromptsAreRefusedBeforeTokenizingAndLeaveNoMemoryBehind()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        Assert.True(server.Model.MaxPromptChars < 1_000_000, $"{server.Model.MaxPromptChars}");
        var prompt = new string(' ', 12_000_000);
        var completion = JsonSerializer.Serialize(new { prompt, max_tokens = 1 });
        var chat = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = prompt } }, max_tokens = 1 });
        prompt = "";
        await Settle();
        var before = Process.GetCurrentProcess().WorkingSet64;
        var allocated = GC.GetTotalAllocatedBytes(precise: true);

        // Four at once: tokenizing them would cost gigabytes and tens of seconds of CPU.
        var answers = await Task.WhenAll(
            Post(server, "/v1/completions", completion), Post(server, "/v1/chat/completions", chat),
            Post(server, "/v1/completions", completion), Post(server, "/v1/chat/completions", chat));
        foreach (var (status, body, path) in answers)
        {
            Assert.True(status == 400, $"{path}: {status}");
            var error = TestServer.AssertError(body, "context_length_exceeded");
            Assert.Equal(path.Contains("chat", StringComparison.Ordinal) ? "messages" : "prompt", error.GetProperty("param").GetString());
        }
        var allocatedMb = (GC.GetTotalAllocatedBytes(precise: true) - allocated) >> 20;
        await Settle();
        var grownMb = (Process.GetCurrentProcess().WorkingSet64 - before) >> 20;
        Assert.True(allocatedMb < 1500, $"the four refusals allocated {allocatedMb} MB");
        Assert.True(grownMb < 300, $"the process grew by {grownMb} MB and kept it");
    }

    /// <summary>
    /// Sixteen clients send a 15 MB body at once. Large bodies share a budget of four of the largest allowed (64 MB),
    /// so the server never holds sixteen: each is refused (400 over the context, or 429 when the budget is full), the
    /// process's peak working set stays within a bound that sixteen held bodies would exceed, and it ends near where
    /// it began.
    /// </summary>
    [Fact]
    public async Task ConcurrentLargeBodiesAreCappedAndLeaveNoMemoryBehind()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { prompt = new string(' ', 15_000_000), max_tokens = 1 }));
        await Settle();
        using var process = Process.GetCurrentProcess();
        var before = process.WorkingSet64;
        var peak = before;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var p = Process.GetCurrentProcess();
                peak = Math.Max(peak, p.WorkingSet64);
                await Task.Delay(5);
            }
        });
        var answers = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => PostBytes(server, "/v1/completions", body)));
        await stop.CancelAsync();
        await sampler;
        foreach (var (status, error) in answers)
        {
            Assert.True(status is 400 or 429, $"{status}");
            TestServer.AssertError(error, status == 400 ? "context_length_exceeded" : "too_many_large_requests");
        }
        var peakMb = (peak - before) >> 20;
        await Settle();
        using var end = Process.GetCurrentProcess();
        var grownMb = (end.WorkingSet64 - before) >> 20;
        Console.WriteLine($"large bodies: {answers.Count(a => a.Status == 429)} refused with 429, peak +{peakMb} MB, after +{grownMb} MB");
        Assert.True(peakMb < 900, $"the process peaked {peakMb} MB above where it was");
        Assert.True(grownMb < 300, $"the process grew by {grownMb} MB and kept it");
    }

    static async Task Settle()
    {
        await Task.Delay(50);
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    static async Task<(int, JsonElement, string)> Post(TestServer server, string path, string json)
    {
        var (status, body, _) = await server.PostAsync(path, json);
        return (status, body, path);
    }

    static async Task<(int Status, JsonElement Body)> PostBytes(TestServer server, string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var response = await server.Http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        JsonElement parsed = default;
        try { parsed = JsonDocument.Parse(text).RootElement.Clone(); } catch (JsonException) { }
        return ((int)response.StatusCode, parsed);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"TEXT\"}], \"max_tokens\": 1}", "messages[0].content")]
    [InlineData("/v1/completions", "{\"prompt\": \"TEXT\", \"max_tokens\": 1}", "prompt")]
    [InlineData("/v1/embeddings", "{\"input\": [\"ok\", \"TEXT\"]}", "input[1]")]
    public async Task InvalidTextIsA400NamingTheField(string path, string template, string field)
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        var halves = template.Split("TEXT");
        // Raw bytes that are not UTF-8 (a lone continuation byte and a truncated sequence).
        var raw = Encoding.UTF8.GetBytes(halves[0]).Concat(new byte[] { (byte)'a', 0x80, 0xE2, 0x82 }).Concat(Encoding.UTF8.GetBytes(halves[1])).ToArray();
        // A JSON escape of a lone surrogate, which no UTF-8 text can hold.
        var surrogate = Encoding.UTF8.GetBytes(halves[0] + "a\\ud800b" + halves[1]);
        foreach (var body in new[] { raw, surrogate })
        {
            var (status, json) = await PostBytes(server, path, body);
            Assert.Equal(400, status);
            Assert.Equal(field, TestServer.AssertError(json).GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task AnUnknownRoleIsA400NamingIt()
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        var (status, body, _) = await server.PostAsync("/v1/chat/completions",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"bogus\", \"content\": \"x\"}], \"max_tokens\": 1}");
        Assert.Equal(400, status);
        Assert.Equal("messages[1].role", TestServer.AssertError(body).GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("/v1/chat/completions", "\"temperature\": 500", "temperature")]
    [InlineData("/v1/chat/completions", "\"top_p\": 0", "top_p")]
    [InlineData("/v1/completions", "\"presence_penalty\": 3", "presence_penalty")]
    [InlineData("/v1/completions", "\"logit_bias\": {\"1\": 1000}", "logit_bias")]
    [InlineData("/v1/completions", "\"logit_bias\": {\"99999999\": 1}", "logit_bias")]
    [InlineData("/v1/completions", "\"prompt\": [99999999]", "prompt[0]")]
    [InlineData("/v1/embeddings", "\"input\": [[99999999]]", "input[0][0]")]
    public async Task RangeErrorsNameTheirField(string path, string field, string param)
    {
        await using var server = await TestServer.StartAsync("qwen2", Small);
        var prompt = path.Contains("chat", StringComparison.Ordinal) ? "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
            : field.StartsWith("\"prompt", StringComparison.Ordinal) || path.Contains("embeddings", StringComparison.Ordinal) ? "" : "\"prompt\": \"hi\", ";
        var rest = path.Contains("embeddings", StringComparison.Ordinal) ? "" : "\"max_tokens\": 1, ";
        var (status, body, _) = await server.PostAsync(path, $"{{{prompt}{rest}{field}}}");
        Assert.Equal(400, status);
        Assert.Equal(param, TestServer.AssertError(body).GetProperty("param").GetString());
    }
}
