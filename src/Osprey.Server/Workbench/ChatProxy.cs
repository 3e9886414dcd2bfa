using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Osprey.Server.Workbench;

/// <summary>
/// Passes requests to a chat job's own server (<c>osprey app</c> or <c>deploy</c> on 127.0.0.1 at the job's
/// <c>--port</c>), so the page embeds the chat page of <c>osprey app</c> itself, streaming and all, behind the web UI's
/// one origin and key.
/// </summary>
internal static class ChatProxy
{
    public static async Task Forward(HttpContext context, WorkbenchJob job, string rest, HttpClient client)
    {
        if (job.Verb is not ("app" or "deploy") || !job.IsRunning)
            throw new OspreyException($"job {job.Id} is not a running chat server (app or deploy).");
        var port = int.Parse(job.Values.First(v => v.Key == "port").Value[0], CultureInfo.InvariantCulture);
        var target = new Uri($"http://127.0.0.1:{port}/{rest}{context.Request.QueryString}");
        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), target);
        if (context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(context.Request.Body);
            if (context.Request.ContentType is { } type) request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
        }
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        }
        catch (HttpRequestException e)
        {
            throw new OspreyException($"job {job.Id}'s chat server at 127.0.0.1:{port} does not answer yet ({e.Message}); wait until its log says it serves.", e);
        }
        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            if (response.Content.Headers.ContentType is { } contentType) context.Response.ContentType = contentType.ToString();
            context.Response.Headers.CacheControl = "no-cache";
            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            var buffer = new byte[8192];
            int read;
            try
            {
                while ((read = await body.ReadAsync(buffer, context.RequestAborted)) > 0)
                {
                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                // The page pressed Stop: dropping the upstream request ends the generation there too.
            }
        }
    }
}
