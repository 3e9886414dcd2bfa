using System.ClientModel;
using System.Text;
using OpenAI.Chat;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>
/// 64 concurrent streaming clients through the official OpenAI client on a tiny model with max_batch_size 16, a
/// third of them hanging up mid-stream: no server error, every finished reply equals the same prompt's reply run
/// alone, the engine ends idle and managed memory returns near its baseline. It runs with no other test beside it:
/// the memory figure is the whole process's, which tests running in parallel would move.
/// </summary>
[Collection(nameof(MeasuresProcessMemoryCollection))]
public sealed class LoadTests
{
    static readonly string[] s_prompts = ["Hello, can you help me?", "What is the capital of France?", "Name a colour.", "Another one?"];

    static async Task<string> Stream(ChatClient client, string prompt, int? hangUpAfter, CancellationTokenSource cts)
    {
        var text = new StringBuilder();
        var chunks = 0;
        await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage(prompt)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = hangUpAfter is null ? 20 : 3000 }, cts.Token))
        {
            foreach (var p in u.ContentUpdate) text.Append(p.Text);
            if (++chunks == hangUpAfter) cts.Cancel();
        }
        return text.ToString();
    }

    [Fact]
    public async Task SixtyFourStreamingClientsWithHangUps()
    {
        await using var server = await TestServer.StartAsync("qwen2", new EngineOptions { MaxBatchSize = 16, MaxModelLen = 4096 });
        var client = server.Chat(hangUp: true);
        var alone = new Dictionary<string, string>();
        foreach (var p in s_prompts) alone[p] = await Stream(client, p, null, new CancellationTokenSource());
        Assert.All(alone.Values, v => Assert.NotEmpty(v));
        await server.WaitIdleAsync();
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        var before = server.Model.Engine.Stats;

        var tasks = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            var prompt = s_prompts[i % s_prompts.Length];
            int? hangUp = i % 3 == 0 ? 2 + i % 4 : null;
            using var cts = new CancellationTokenSource();
            try
            {
                return (prompt, hangUp, Text: (string?)await Stream(client, prompt, hangUp, cts), Error: (Exception?)null);
            }
            catch (OperationCanceledException) when (hangUp is not null)
            {
                return (prompt, hangUp, Text: (string?)null, Error: null);
            }
            catch (Exception e)
            {
                return (prompt, hangUp, Text: null, Error: e);
            }
        })).ToArray();
        var results = await Task.WhenAll(tasks);

        Assert.All(results, r => Assert.Null(r.Error));
        foreach (var r in results.Where(r => r.hangUp is null)) Assert.Equal(alone[r.prompt], r.Text);
        // A hang-up that came after the last chunk (the model ended its reply first) still finished; its text starts
        // with the 20-token reply. Hang-ups ask for 3000 tokens, so most are still running when they hang up.
        foreach (var r in results.Where(r => r.hangUp is not null && r.Text is not null)) Assert.StartsWith(alone[r.prompt], r.Text!);

        var after = await server.WaitIdleAsync();
        Assert.Equal(0, after.Running);
        Assert.Equal(0, after.Waiting);
        Assert.Equal(0, after.SlotsInUse);
        Assert.Equal(64, (after.Completed - before.Completed) + (after.Cancelled - before.Cancelled));
        Assert.True(after.Cancelled > before.Cancelled, $"{after} vs {before}; hang-ups finished: {results.Count(r => r.hangUp is not null && r.Text is not null)} lens {string.Join(",", alone.Values.Select(v => v.Length))}");

        var end = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(end < baseline + 16 * 1024 * 1024, $"managed memory {baseline} -> {end}");
    }
}
