using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Training.Grpo;

/// <summary>
/// <c>--reward_url</c>: POSTs each batch as one JSON object — <c>completions</c>, <c>messages</c> (each prompt),
/// <c>completion_tokens</c>, <c>truncated</c>, and every other dataset column as a list with one value per completion
/// (as ms-swift passes columns to reward functions) — and reads back <c>{"rewards": [...]}</c> (or a bare array), one
/// number per completion (null for "does not apply").
/// </summary>
internal sealed class HttpReward(string url, TimeSpan timeout) : IRewardFunction, IDisposable
{
    readonly HttpClient _client = new() { Timeout = timeout };

    public string Name => "reward_url";

    public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch)
    {
        var body = new JsonObject
        {
            ["completions"] = new JsonArray(batch.Select(c => (JsonNode?)c.Completion).ToArray()),
            ["messages"] = new JsonArray(batch.Select(c => JsonSerializer.SerializeToNode(c.Messages)).ToArray()),
            ["completion_tokens"] = new JsonArray(batch.Select(c => (JsonNode?)c.CompletionTokens).ToArray()),
            ["truncated"] = new JsonArray(batch.Select(c => (JsonNode?)c.Truncated).ToArray()),
        };
        foreach (var column in batch.SelectMany(c => c.Row.Select(p => p.Key)).Distinct().Where(k => !body.ContainsKey(k)))
            body[column] = new JsonArray(batch.Select(c => c.Row[column]?.DeepClone()).ToArray());
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, new MediaTypeHeaderValue("application/json")) };
        string text;
        try
        {
            using var response = _client.Send(request);
            text = new StreamReader(response.Content.ReadAsStream()).ReadToEnd();
            if (!response.IsSuccessStatusCode)
                throw new OspreyException($"--reward_url {url} answered {(int)response.StatusCode} {response.ReasonPhrase}: {Truncate(text)}; fix the reward server.");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new OspreyException($"--reward_url {url} could not be reached ({e.Message.TrimEnd('.')}); start the reward server or fix the URL.", e);
        }
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new OspreyException($"--reward_url {url} returned something that is not JSON ({Truncate(text)}); return {{\"rewards\": [...]}}.", e);
        }
        var rewards = (root is JsonObject o ? o["rewards"] : root) as JsonArray
            ?? throw new OspreyException($"--reward_url {url} returned no \"rewards\" array ({Truncate(text)}); return {{\"rewards\": [one number per completion]}}.");
        if (rewards.Count != batch.Count)
            throw new OspreyException($"--reward_url {url} returned {rewards.Count} rewards for {batch.Count} completions; return one per completion.");
        return rewards.Select(r => r is null ? double.NaN : r.GetValueKind() == JsonValueKind.Number ? r.GetValue<double>()
            : throw new OspreyException($"--reward_url {url} returned the reward {r.ToJsonString()}, which is not a number or null.")).ToList();
    }

    static string Truncate(string s) => s.Length <= 200 ? s : string.Create(CultureInfo.InvariantCulture, $"{s[..200]}…");

    public void Dispose() => _client.Dispose();
}
