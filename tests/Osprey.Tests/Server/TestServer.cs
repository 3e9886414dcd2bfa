using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using OpenAI;
using OpenAI.Chat;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Server;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>A real Kestrel server on 127.0.0.1 (a free port) over a tiny parity fixture, with clients for it.</summary>
public sealed class TestServer : IAsyncDisposable
{
    TestServer(ServedModel model, WebApplication app, string baseUrl, string? apiKey, StringWriter log)
    {
        Model = model;
        App = app;
        BaseUrl = baseUrl;
        ApiKey = apiKey;
        Log = log;
        Http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public ServedModel Model { get; }
    public WebApplication App { get; }
    /// <summary>http://127.0.0.1:PORT</summary>
    public string BaseUrl { get; }
    public string? ApiKey { get; }
    /// <summary>What the server logged (internal errors).</summary>
    public StringWriter Log { get; }
    /// <summary>A raw client with the key (when the server has one).</summary>
    public HttpClient Http { get; }

    public static string Fixture(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    /// <summary>Serves the parity fixture <paramref name="family"/>, or the model in <paramref name="folder"/> when given.</summary>
    public static async Task<TestServer> StartAsync(string family = "qwen2", EngineOptions? engine = null, string? apiKey = null, long? maxBody = null, string? template = null, string? folder = null, ImageRequestOptions? images = null)
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var model = ServedModel.Load(folder ?? Fixture(family), new ModelLoadOptions { Device = DeviceSpec.Cpu, DType = "float32" },
            new ServeOptions { Engine = engine ?? new EngineOptions(), Template = template, Images = images ?? new ImageRequestOptions() });
        var log = new StringWriter();
        var options = new ServerOptions { Host = "127.0.0.1", Port = 0, ApiKey = apiKey, Log = TextWriter.Synchronized(log) };
        if (maxBody is not null) options = options with { MaxRequestBodyBytes = maxBody.Value };
        var app = OpenAiServer.Build(model, options);
        await app.StartAsync();
        var url = app.Urls.Single();
        Assert.NotEqual(0, new Uri(url).Port);
        return new TestServer(model, app, url, apiKey, log);
    }

    /// <summary>
    /// The official OpenAI chat client pointed at this server. With <paramref name="hangUp"/> its transport never
    /// drains a response it stops reading (SocketsHttpHandler otherwise reads up to 1 MiB of the rest to reuse the
    /// connection), so cancelling a stream closes the connection as a client that goes away does.
    /// </summary>
    public ChatClient Chat(string? model = null, string? key = null, bool hangUp = false)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };
        if (hangUp)
        {
            var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, ResponseDrainTimeout = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(60) };
            _clients.Add(http);
            options.Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(http);
        }
        return new(model ?? Model.Name, new ApiKeyCredential(key ?? ApiKey ?? "unused"), options);
    }

    readonly List<HttpClient> _clients = [];

    /// <summary>A raw client that closes the connection when a response is disposed unread (see <see cref="Chat"/>).</summary>
    public HttpClient HangUpHttp()
    {
        var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, ResponseDrainTimeout = TimeSpan.Zero }) { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
        _clients.Add(http);
        return http;
    }

    /// <summary>POSTs JSON text; returns the status and the parsed body (null when not JSON).</summary>
    public async Task<(int Status, JsonElement Body, string Text)> PostAsync(string path, string json, HttpClient? client = null)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await (client ?? Http).PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, Parse(text), text);
    }

    public async Task<(int Status, JsonElement Body, string Text)> GetAsync(string path, HttpClient? client = null)
    {
        using var response = await (client ?? Http).GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, Parse(text), text);
    }

    static JsonElement Parse(string text)
    {
        try { return JsonDocument.Parse(text).RootElement.Clone(); }
        catch (JsonException) { return default; }
    }

    /// <summary>Asserts <paramref name="body"/> is OpenAI's error shape; returns the error object.</summary>
    public static JsonElement AssertError(JsonElement body, string? code = null)
    {
        Assert.Equal(JsonValueKind.Object, body.ValueKind);
        var error = body.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("param", out _));
        Assert.True(error.TryGetProperty("code", out var c));
        if (code is not null) Assert.Equal(code, c.GetString());
        Assert.DoesNotContain("   at ", error.GetProperty("message").GetString());
        return error;
    }

    /// <summary>Waits until the engine has nothing running or waiting.</summary>
    public async Task<EngineStats> WaitIdleAsync(int timeoutMs = 20000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            var s = Model.Engine.Stats;
            if ((s.Running == 0 && s.Waiting == 0 && s.SlotsInUse == 0) || DateTime.UtcNow > until) return s;
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        foreach (var c in _clients) c.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Model.Dispose();
        // No test expects an internal error: every failure a client can cause has its own status.
        var log = Log.ToString();
        Assert.True(!log.Contains("internal error", StringComparison.Ordinal), log);
    }
}
