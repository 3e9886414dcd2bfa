using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Osprey.Evaluation;

/// <summary>
/// A model behind an OpenAI-compatible server (vLLM, <c>osprey deploy</c>, a hosted API): each prompt is one
/// <c>POST {url}/chat/completions</c>, at most <see cref="Concurrency"/> in flight. A request that fails on the way
/// (connection refused or reset, timeout, HTTP 408, 429 or 5xx) is retried after 0.5 s, 1 s, 2 s, … (at most
/// <see cref="MaxAttempts"/> attempts); any other HTTP error ends the run with the server's answer.
/// </summary>
public sealed class UrlEvalModel : IEvalModel
{
    /// <summary>Attempts per request before the run stops.</summary>
    public const int MaxAttempts = 5;

    readonly HttpClient _http;
    readonly string _url;
    readonly EvalGeneration _generation;
    readonly SemaphoreSlim _slots;
    readonly TimeSpan _firstBackoff;

    /// <summary>Talks to <paramref name="baseUrl"/> (…/v1) as model <paramref name="model"/>.</summary>
    public UrlEvalModel(string baseUrl, string model, string? apiKey, EvalGeneration generation, int concurrency, TimeSpan? firstBackoff = null)
    {
        _url = baseUrl.TrimEnd('/') + "/chat/completions";
        _http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        if (!string.IsNullOrEmpty(apiKey)) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _generation = generation;
        _slots = new SemaphoreSlim(concurrency);
        _firstBackoff = firstBackoff ?? TimeSpan.FromSeconds(0.5);
        Name = model;
        Concurrency = concurrency;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public bool CanScore => false;

    /// <inheritdoc/>
    public int Concurrency { get; }

    /// <summary>Requests sent, retries included (for tests and the log).</summary>
    public int RequestsSent => _sent;
    int _sent;

    /// <inheritdoc/>
    public double[] LogLikelihoods(string context, IReadOnlyList<string> continuations) =>
        throw new OspreyException("log-likelihood scoring needs the model's logits, which a chat server does not give; use --eval_mc_method generation.");

    /// <inheritdoc/>
    public async Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<EvalPrompt> prompts, CancellationToken cancel) =>
        await Task.WhenAll(prompts.Select(p => OneAsync(p, cancel)));

    async Task<string> OneAsync(EvalPrompt prompt, CancellationToken cancel)
    {
        var messages = new JsonArray();
        if (prompt.System is not null) messages.Add(new JsonObject { ["role"] = "system", ["content"] = prompt.System });
        messages.Add(new JsonObject { ["role"] = "user", ["content"] = prompt.User });
        var body = new JsonObject
        {
            ["model"] = Name,
            ["messages"] = messages,
            ["max_tokens"] = _generation.MaxTokens,
            ["temperature"] = _generation.IsGreedy ? 0 : _generation.Temperature,
            ["top_p"] = _generation.TopP,
            ["seed"] = _generation.Seed,
        }.ToJsonString();
        await _slots.WaitAsync(cancel);
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                string? failure;
                try
                {
                    Interlocked.Increment(ref _sent);
                    using var content = new StringContent(body, Encoding.UTF8, "application/json");
                    using var response = await _http.PostAsync(_url, content, cancel);
                    var text = await response.Content.ReadAsStringAsync(cancel);
                    if (response.IsSuccessStatusCode) return Reply(text);
                    var status = (int)response.StatusCode;
                    if (status != 408 && status != 429 && status < 500)
                        throw new OspreyException($"{_url} answered HTTP {status} ({response.StatusCode}): {Shorten(text)}; check --model, --api_key and --eval_url.");
                    failure = $"HTTP {status}";
                }
                catch (HttpRequestException e)
                {
                    failure = e.Message;
                }
                catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
                {
                    failure = "timed out";
                }
                if (attempt >= MaxAttempts) throw new OspreyException($"{_url} failed {MaxAttempts} times (last: {failure}); check that the server is up, or lower --eval_num_proc.");
                await Task.Delay(_firstBackoff * Math.Pow(2, attempt - 1), cancel);
            }
        }
        finally
        {
            _slots.Release();
        }
    }

    string Reply(string text)
    {
        try
        {
            var json = JsonNode.Parse(text);
            return json?["choices"]?[0]?["message"]?["content"]?.GetValue<string>() ?? "";
        }
        catch (System.Text.Json.JsonException)
        {
            throw new OspreyException($"{_url} answered something that is not a chat completion: {Shorten(text)}.");
        }
    }

    static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";

    /// <inheritdoc/>
    public void Dispose()
    {
        _http.Dispose();
        _slots.Dispose();
    }
}
