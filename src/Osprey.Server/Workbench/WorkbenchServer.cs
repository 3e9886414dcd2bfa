using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Osprey.Runtime;

namespace Osprey.Server.Workbench;

/// <summary>
/// <c>osprey web-ui</c>'s server: the single page (embedded, no CDN) and its JSON API. Verb schemas come from the
/// declared flags (<see cref="VerbSchema"/>), jobs are child <c>osprey</c> processes (<see cref="JobStore"/>), a run's
/// logging.jsonl streams as server-sent events, and a chat job's own server is reached through
/// <c>/api/jobs/ID/proxy/</c>. Off 127.0.0.1 every request needs the API key; request bodies are capped.
/// </summary>
public static class WorkbenchServer
{
    /// <summary>The largest request body accepted (a form or a config file).</summary>
    public const long MaxRequestBodyBytes = 1 << 20;

    /// <summary>The page's files and their content types.</summary>
    public static IReadOnlyDictionary<string, string> Files { get; } = new Dictionary<string, string>
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["workbench.js"] = "text/javascript; charset=utf-8",
        ["charts.js"] = "text/javascript; charset=utf-8",
        ["strings.js"] = "text/javascript; charset=utf-8",
        ["workbench.css"] = "text/css; charset=utf-8",
    };

    /// <summary>Builds (does not start) the web UI's Kestrel app.</summary>
    /// <exception cref="OspreyException">The flags do not go together (<see cref="WebUiOptions.Validate"/>).</exception>
    public static WebApplication Build(WebUiOptions options, WorkbenchSetup setup)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(setup);
        options.Validate();
        var allowed = new AllowedPaths(options.AllowedPaths, setup.WorkingFolder);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var host = options.Host.Contains(':', StringComparison.Ordinal) && !options.Host.StartsWith('[') ? $"[{options.Host}]" : options.Host;
        builder.WebHost.UseUrls($"http://{host}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.Services.AddHttpClient();
        var app = builder.Build();
        var jobs = new JobStore(setup);
        app.Lifetime.ApplicationStopped.Register(jobs.Dispose);
        var verbs = setup.Verbs.ToDictionary(v => v.Name, StringComparer.Ordinal);

        app.Use(async (context, next) =>
        {
            if (options.ApiKey is { Length: > 0 } key && context.Request.Path.StartsWithSegments("/api") && !Authorized(context.Request, key))
            {
                await Error(context, 401, "this web UI needs its API key: type it on the page, or send Authorization: Bearer KEY.");
                return;
            }
            try
            {
                await next(context);
            }
            catch (OspreyException e)
            {
                if (!context.Response.HasStarted) await Error(context, 400, e.Message);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await Error(context, 413, $"the request body is larger than {MaxRequestBodyBytes / 1024} KiB, the most this web UI accepts.");
            }
            catch (Exception e) when (e is not OperationCanceledException && !context.Response.HasStarted)
            {
                // A bug, not a bad request: say so on the page and in the server's log instead of an empty 500.
                (setup.Log ?? Console.Error).WriteLine($"osprey web-ui: {context.Request.Method} {context.Request.Path}: {e}");
                await Error(context, 500, $"the web UI failed: {e.Message}");
            }
        });

        foreach (var (name, type) in Files)
        {
            var bytes = Read(name);
            var handler = (HttpContext context) =>
            {
                context.Response.Headers.CacheControl = "no-cache";
                context.Response.Headers.XContentTypeOptions = "nosniff";
                return Results.Bytes(bytes, type);
            };
            app.MapGet("/" + name, handler);
            if (name == "index.html") app.MapGet("/", handler);
        }

        app.MapGet("/api/info", () => Results.Json(new JsonObject
        {
            ["lang"] = options.Lang.ToString().ToLowerInvariant(),
            ["verbs"] = new JsonArray([.. setup.Verbs.Select(v => (JsonNode?)new JsonObject { ["name"] = v.Name, ["summary"] = v.Summary })]),
            ["working_folder"] = allowed.WorkingFolder,
            ["allowed_paths"] = new JsonArray([.. allowed.Roots.Select(r => (JsonNode?)r)]),
            ["key_required"] = options.ApiKey is { Length: > 0 },
        }));
        app.MapGet("/api/verbs/{verb}/schema", (string verb) => Results.Json(VerbSchema.For(Verb(verbs, verb))));
        app.MapPost("/api/command", async (HttpContext context, CancellationToken _) =>
        {
            var args = await ReadForm(context, verbs, allowed, setup.CheckArguments);
            return Results.Json(new JsonObject { ["argv"] = new JsonArray([.. args.Argv.Select(a => (JsonNode?)a)]), ["command"] = args.CommandLine });
        });
        app.MapPost("/api/estimate", async (HttpContext context, CancellationToken _) => Results.Json(FitEstimate.For(await ReadForm(context, verbs, allowed, setup.CheckArguments))));
        app.MapGet("/api/jobs", () => Results.Json(jobs.List().Select(Show).ToList()));
        app.MapPost("/api/jobs", async (HttpContext context, CancellationToken _) => Results.Json(Show(jobs.Start(await ReadForm(context, verbs, allowed, setup.CheckArguments))), statusCode: 201));
        app.MapGet("/api/jobs/{id}", (string id) => Results.Json(Show(Job(jobs, id))));
        app.MapGet("/api/jobs/{id}/log", (string id, int? lines) => Results.Text(JobStore.Tail(Job(jobs, id), Math.Clamp(lines ?? 200, 1, 5000))));
        app.MapPost("/api/jobs/{id}/stop", (string id) => Results.Json(Show(jobs.Stop(id))));
        app.MapPost("/api/jobs/{id}/resume", (string id) => Results.Json(Show(jobs.Resume(id, allowed, setup.Verbs)), statusCode: 201));
        app.MapDelete("/api/jobs/{id}", (string id) =>
        {
            jobs.Delete(id);
            return Results.NoContent();
        });
        app.MapGet("/api/jobs/{id}/eval", (string id) => Results.Text(EvalReportText(Job(jobs, id), allowed.WorkingFolder), "application/json"));
        app.MapGet("/api/jobs/{id}/metrics", (HttpContext context, string id) => MetricStream.Send(context, jobs, id, app.Lifetime.ApplicationStopping));
        app.Map("/api/jobs/{id}/proxy/{**rest}", (HttpContext context, string id, string? rest, IHttpClientFactory clients) =>
            ChatProxy.Forward(context, Job(jobs, id), rest ?? "", clients.CreateClient()));
        app.MapGet("/api/gpus", () => Results.Json(Gpus()));
        return app;
    }

    /// <summary>The bytes of one of the page's <see cref="Files"/>.</summary>
    public static byte[] Read(string name)
    {
        var resource = "Osprey.Server.Workbench." + name;
        using var stream = typeof(WorkbenchServer).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"the web UI file {resource} is not embedded in {typeof(WorkbenchServer).Assembly.GetName().Name}; rebuild Osprey.Server.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    static JsonArray Gpus()
    {
        var list = new JsonArray();
        try
        {
            foreach (var gpu in Nvml.Devices())
                list.Add(new JsonObject
                {
                    ["index"] = gpu.Index, ["name"] = gpu.Name, ["total_bytes"] = gpu.TotalBytes, ["used_bytes"] = gpu.UsedBytes,
                    ["utilization_percent"] = Nvml.UtilizationPercent(gpu.Index) is var busy and >= 0 ? busy : null,
                });
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            // No NVIDIA driver: no meters, as on a CPU machine.
        }
        return list;
    }

    /// <summary>An eval job's report.json as written (its --eval_output_dir, relative to the working folder).</summary>
    static string EvalReportText(WorkbenchJob job, string workingFolder)
    {
        if (job.Verb != "eval") throw new OspreyException($"job {job.Id} is {job.Verb}, not eval: only eval jobs have a report.json.");
        var folder = job.Values.FirstOrDefault(v => v.Key == "eval_output_dir").Value?.FirstOrDefault() ?? "eval_output";
        var file = Path.Combine(Path.GetFullPath(folder, workingFolder), "report.json");
        return File.Exists(file) ? File.ReadAllText(file)
            : throw new OspreyException($"job {job.Id} has no {file} yet; osprey eval writes it when every item is answered.");
    }

    static WorkbenchVerb Verb(Dictionary<string, WorkbenchVerb> verbs, string name) =>
        verbs.GetValueOrDefault(name) ?? throw new OspreyException($"'{name}' is not a verb this web UI runs; it runs {string.Join(", ", verbs.Keys.Order(StringComparer.Ordinal))}.");

    static WorkbenchJob Job(JobStore jobs, string id) => jobs.Get(id) ?? throw new OspreyException($"there is no job {id}.");

    static async Task<FormArguments> ReadForm(HttpContext context, Dictionary<string, WorkbenchVerb> verbs, AllowedPaths allowed, Func<IReadOnlyList<string>, string?>? check)
    {
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(context.Request.Body);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new OspreyException($"the request body is not JSON ({e.Message}); send {{\"verb\": \"sft\", \"values\": {{\"model\": \"...\"}}}}.", e);
        }
        if (body is not JsonObject form || form["verb"]?.GetValue<string>() is not { } verb)
            throw new OspreyException("the request body needs \"verb\" (a verb name) and \"values\" (flag name to value).");
        return FormArguments.Read(Verb(verbs, verb), form["values"] as JsonObject ?? [], allowed, check);
    }

    static JsonObject Show(WorkbenchJob job) => new()
    {
        ["id"] = job.Id,
        ["verb"] = job.Verb,
        ["values"] = new JsonObject(job.Values.Select(v => new KeyValuePair<string, JsonNode?>(v.Key, new JsonArray([.. v.Value.Select(t => (JsonNode?)t)])))),
        ["command"] = job.Command,
        ["pid"] = job.Pid,
        ["state"] = job.State,
        ["exit_code"] = job.ExitCode,
        ["started"] = job.Started,
        ["ended"] = job.Ended,
        ["run_directory"] = job.RunDirectory,
        ["tensorboard"] = job.RunDirectory is null ? null : Path.Combine(job.RunDirectory, "runs"),
        ["last_checkpoint"] = JobStore.LastCheckpoint(job),
        ["resumed_from"] = job.ResumedFrom,
    };

    static bool Authorized(HttpRequest request, string key)
    {
        var given = request.Headers.Authorization.ToString() is { } header && header.StartsWith("Bearer ", StringComparison.Ordinal) ? header[7..]
            : request.Cookies["osprey_key"] ?? "";
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(key));
    }

    static Task Error(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new JsonObject { ["error"] = new JsonObject { ["message"] = message } });
    }
}
