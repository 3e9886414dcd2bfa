using System.Net.Sockets;
using System.Text;

namespace Osprey.Tests.Hub;

/// <summary>What the fake hubs (FakeHubServer, ModelScopeTestServer) share: the accept loop and reading a request head.</summary>
internal static class TestHttp
{
    /// <summary>Accepts connections until <paramref name="stop"/>, serving each (one request) on its own task.</summary>
    public static async Task AcceptLoop(TcpListener listener, CancellationToken stop, Func<NetworkStream, Task> serve)
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop);
            }
            catch (Exception)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        await serve(client.GetStream());
                    }
                    catch (Exception)
                    {
                        // the client went away
                    }
                }
            });
        }
    }

    /// <summary>The method, target and headers (lower-case names) of the request on <paramref name="stream"/>; null when it closes first.</summary>
    public static async Task<(string Method, string Target, Dictionary<string, string> Headers)?> ReadHead(NetworkStream stream)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one) == 0) return null;
            head.Append((char)one[0]);
        }
        var lines = head.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var parts = lines[0].Split(' ');
        var headers = new Dictionary<string, string>();
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
        }
        return (parts[0], parts[1], headers);
    }
}
