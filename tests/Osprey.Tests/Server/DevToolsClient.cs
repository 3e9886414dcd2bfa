using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Tests.Server;

/// <summary>
/// Headless Debian Chromium driven over the Chrome DevTools Protocol: starts /usr/bin/chromium with its own
/// temporary profile and a free debugging port, connects a WebSocket to its first page, and sends commands.
/// Dispose kills the browser (the process this started, and its children) and deletes the profile.
/// </summary>
internal sealed class HeadlessChromium : IAsyncDisposable
{
    public const string Executable = "/usr/bin/chromium";

    readonly Process _process;
    readonly string _profile;
    readonly ClientWebSocket _socket = new();
    readonly ConcurrentDictionary<int, TaskCompletionSource<JsonObject>> _pending = new();
    readonly CancellationTokenSource _stop = new();
    readonly StringBuilder _stderr = new();
    Task? _reader;
    int _nextId;

    HeadlessChromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    /// <summary>Starts the browser and connects to its page; fails (never skips) when Chromium is not installed.</summary>
    public static async Task<HeadlessChromium> StartAsync(TimeSpan timeout)
    {
        if (!File.Exists(Executable))
            throw new InvalidOperationException($"{Executable} is missing; install Debian's chromium package (apt-get install -y chromium; ./test.sh does this).");
        var profile = Path.Combine(Path.GetTempPath(), "osprey-chromium-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(profile);
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-port=0",
                     "--window-size=1100,800", "--user-data-dir=" + profile, "about:blank",
                 })
            start.ArgumentList.Add(a);
        var process = Process.Start(start) ?? throw new InvalidOperationException("chromium did not start.");
        var browser = new HeadlessChromium(process, profile);
        try
        {
            process.ErrorDataReceived += (_, e) => { lock (browser._stderr) browser._stderr.AppendLine(e.Data); };
            process.OutputDataReceived += (_, _) => { };
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            await browser.ConnectAsync(timeout);
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    string Stderr() { lock (_stderr) return _stderr.ToString(); }

    async Task ConnectAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var portFile = Path.Combine(_profile, "DevToolsActivePort");
        int port = 0;
        while (port == 0)
        {
            if (_process.HasExited) throw new InvalidOperationException($"chromium exited with code {_process.ExitCode}: {Stderr()}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"chromium wrote no DevToolsActivePort in {timeout}: {Stderr()}");
            try
            {
                var lines = File.Exists(portFile) ? await File.ReadAllLinesAsync(portFile) : [];
                if (lines.Length > 0 && int.TryParse(lines[0], out var p)) port = p;
            }
            catch (IOException) { /* being written */ }
            if (port == 0) await Task.Delay(50);
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string? url = null;
        while (url is null)
        {
            var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list"))!.AsArray();
            url = targets.FirstOrDefault(t => (string?)t!["type"] == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
            if (url is null)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException("chromium has no page target.");
                await Task.Delay(50);
            }
        }
        await _socket.ConnectAsync(new Uri(url), CancellationToken.None);
        _reader = Task.Run(ReadLoop);
    }

    async Task ReadLoop()
    {
        var buffer = new byte[1 << 16];
        var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested && _socket.State == WebSocketState.Open)
            {
                var r = await _socket.ReceiveAsync(buffer, _stop.Token);
                if (r.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage) continue;
                var json = JsonNode.Parse(message.ToArray())!.AsObject();
                message.SetLength(0);
                if (json["id"] is JsonNode id && _pending.TryRemove(id.GetValue<int>(), out var tcs)) tcs.TrySetResult(json);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
        foreach (var tcs in _pending.Values) tcs.TrySetException(new InvalidOperationException("the DevTools connection closed."));
    }

    /// <summary>Sends a command and returns its result; a protocol error throws.</summary>
    public async Task<JsonObject> SendAsync(string method, JsonObject? parameters = null, TimeSpan? timeout = null)
    {
        var id = Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        var payload = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? [] };
        await _socket.SendAsync(Encoding.UTF8.GetBytes(payload.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        var reply = await tcs.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        if (reply["error"] is JsonNode error) throw new InvalidOperationException($"{method} failed: {error.ToJsonString()}");
        return reply["result"]!.AsObject();
    }

    /// <summary>Evaluates a JavaScript expression in the page (awaiting a promise) and returns its JSON value.</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true });
        if (result["exceptionDetails"] is JsonNode ex) throw new InvalidOperationException($"page script failed: {ex.ToJsonString()}");
        return result["result"]?["value"]?.DeepClone();
    }

    /// <summary>Polls <paramref name="condition"/> (a JavaScript expression) until it is true.</summary>
    public async Task WaitForAsync(string condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if ((await EvaluateAsync($"Boolean({condition})"))?.GetValue<bool>() == true) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the page never reached: {condition}");
            await Task.Delay(25);
        }
    }

    /// <summary>Kills the browser it started and deletes its profile.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            if (_socket.State == WebSocketState.Open)
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is WebSocketException or TimeoutException or OperationCanceledException) { }
        _socket.Dispose();
        if (_reader is not null) await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException) { }
        _process.Dispose();
        _stop.Dispose();
        for (var attempt = 0; attempt < 5 && Directory.Exists(_profile); attempt++)
        {
            try { Directory.Delete(_profile, recursive: true); }
            catch (IOException) { await Task.Delay(100); }
            catch (UnauthorizedAccessException) { await Task.Delay(100); }
        }
    }
}
