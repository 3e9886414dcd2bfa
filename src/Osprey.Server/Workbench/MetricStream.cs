using System.Text;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server.Workbench;

/// <summary>
/// A run's logging.jsonl as server-sent events: every complete line already written, then each new one as it is
/// appended (polled twice a second), one <c>data:</c> event per record; <c>event: end</c> once the job has ended and
/// every line is sent.
/// </summary>
internal static class MetricStream
{
    public static async Task Send(HttpContext context, JobStore jobs, string id, CancellationToken stopping)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        var job = jobs.Get(id) ?? throw new OspreyException($"there is no job {id}.");
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.Body.FlushAsync(cancel.Token);
        long offset = 0;
        var pending = new StringBuilder();
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                job = jobs.Get(id);
                if (job is null) return;
                var ended = !job.IsRunning;
                if (job.RunDirectory is { } run && Path.Combine(run, "logging.jsonl") is var file && File.Exists(file))
                {
                    using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    // Resuming rewrites the file shorter (it drops lines past the checkpoint): start over then.
                    if (stream.Length < offset) { offset = 0; pending.Clear(); await context.Response.WriteAsync("event: reset\ndata: {}\n\n", cancel.Token); }
                    stream.Seek(offset, SeekOrigin.Begin);
                    var text = await new StreamReader(stream, Encoding.UTF8).ReadToEndAsync(cancel.Token);
                    offset = stream.Length;
                    pending.Append(text);
                    var all = pending.ToString();
                    var cut = all.LastIndexOf('\n');
                    if (cut >= 0)
                    {
                        foreach (var line in all[..cut].Split('\n'))
                            if (line.Trim() is { Length: > 0 } record) await context.Response.WriteAsync("data: " + record + "\n\n", cancel.Token);
                        pending.Clear().Append(all[(cut + 1)..]);
                        await context.Response.Body.FlushAsync(cancel.Token);
                    }
                }
                if (ended)
                {
                    await context.Response.WriteAsync("event: end\ndata: {\"state\": \"" + job.State + "\"}\n\n", cancel.Token);
                    return;
                }
                await Task.Delay(500, cancel.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // The page closed the stream or the server stops.
        }
    }
}
