using Microsoft.Extensions.Hosting;
using Osprey.Cli.Args;
using Osprey.Server;
using Osprey.Serving;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// The flags of <c>osprey deploy</c> and <c>osprey app</c> (ms-swift's names) and the serving loop both run: load the
/// model, start the OpenAI-compatible server, print where it listens, run until Ctrl-C.
/// </summary>
internal sealed record ServeFlags(ModelFlags Model, IReadOnlyList<(string Name, string Path)> Adapters, string Host, int Port, string? ApiKey,
    string? ServedModelName, int? MaxBatchSize, int? MaxModelLen, string? Template, bool EnforceEager)
{
    public const string Help =
        "  --adapters [NAME=]DIR... LoRA adapters clients select by \"model\": NAME (default: the folder's name). Without\n" +
        "                           --model the base model comes from the first adapter's args.json.\n" +
        "  --host H                 Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).\n" +
        "  --port N                 Port to listen on (0: a free one).\n" +
        "  --api_key KEY            Require \"Authorization: Bearer KEY\" on every request.\n" +
        "  --served_model_name NAME Name clients use for the base model (default: the model folder's name).\n" +
        "  --max_batch_size N       Requests decoded together at most (default 32).\n" +
        "  --max_model_len N        Prompt plus output tokens per request at most (default: the model's context, at most 8192).\n" +
        "  --enforce_eager BOOL     On CUDA, launch every kernel of a decode step instead of replaying CUDA graphs\n" +
        "                           (default false; graphs make small batches several times faster).\n" +
        "  --template FILE|NAME     Chat template: a Jinja file, a named template of the tokenizer, or an ms-swift name.\n" +
        "  --infer_backend pt       Inference engine; Osprey runs only its own 'pt' engine.\n";

    /// <summary>Reads and checks the flags; <paramref name="defaultPort"/> is 8000 for deploy, 7860 for app.</summary>
    public static ServeFlags Read(OptionReader o, int defaultPort)
    {
        var model = ModelFlags.Read(o);
        var adapterArgs = o.List("adapters");
        var host = o.String("host", "127.0.0.1");
        var port = o.Int("port", defaultPort);
        var apiKey = o.String("api_key");
        var name = o.String("served_model_name");
        var maxBatch = o.Int("max_batch_size");
        var maxLen = o.Int("max_model_len");
        var template = o.String("template");
        var backend = o.String("infer_backend", "pt");
        var eager = o.Bool("enforce_eager", false);
        o.EnsureNoUnknownFlags();

        if (backend is "vllm" or "sglang" or "lmdeploy")
            throw new UserError($"--infer_backend {backend} is a Python engine that Osprey does not drive; Osprey serves with its own engine, so pass --infer_backend pt or drop the flag.");
        if (backend != "pt") throw new UserError($"--infer_backend {backend} is unknown; Osprey's engine is 'pt', so pass --infer_backend pt or drop the flag.");
        if (port is < 0 or > 65535) throw new UserError($"--port must be between 0 and 65535, got {port}.");
        if (string.IsNullOrWhiteSpace(host)) throw new UserError("--host is empty; pass an address such as 127.0.0.1 or 0.0.0.0.");
        if (apiKey is not null && apiKey.Trim().Length == 0) throw new UserError("--api_key is empty; pass a non-empty key or drop the flag.");
        if (name is not null && name.Trim().Length == 0) throw new UserError("--served_model_name is empty; pass a name or drop the flag.");
        if (maxBatch is < 1) throw new UserError($"--max_batch_size must be 1 or more, got {maxBatch}.");
        if (maxLen is < 2) throw new UserError($"--max_model_len must be 2 or more, got {maxLen}.");

        var adapters = new List<(string, string)>();
        foreach (var a in adapterArgs)
        {
            var eq = a.IndexOf('=', StringComparison.Ordinal);
            var (n, path) = eq > 0 ? (a[..eq], a[(eq + 1)..]) : (Path.GetFileName(Path.TrimEndingDirectorySeparator(a)), a);
            if (eq == 0 || string.IsNullOrWhiteSpace(n)) throw new UserError($"--adapters {a} has an empty name; write it as NAME=DIR or give a folder.");
            if (string.IsNullOrEmpty(path)) throw new UserError($"--adapters {a} has no folder after '='; write it as NAME=DIR.");
            if (!Directory.Exists(path)) throw new UserError($"--adapters {a}: the folder {path} does not exist; pass a LoRA checkpoint folder.");
            if (!PeftAdapter.IsAdapter(path)) throw new UserError($"--adapters {a}: {path} has no adapter_config.json; pass a LoRA checkpoint-N folder or a PEFT adapter folder.");
            if (adapters.Any(x => x.Item1 == n)) throw new UserError($"--adapters names '{n}' twice; give each adapter its own name as NAME=DIR.");
            if (n == name) throw new UserError($"--adapters name '{n}' is also the --served_model_name; rename one of them.");
            adapters.Add((n, path));
        }
        if (adapters.Count > 0)
            (model, template) = new AdapterFlags(adapters.Select(x => x.Item2).ToList()).Resolve(model, template);
        if (model.Model is null) throw new UserError("--model is required; pass a Hugging Face model folder or a hub id (org/name).");
        return new ServeFlags(model, adapters, host, port, apiKey, name, maxBatch, maxLen, template, eager);
    }

    /// <summary>Loads the model, serves it until <paramref name="stop"/> is cancelled or Ctrl-C, then shuts down.</summary>
    public int Serve(bool webUi, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        Runtime.TorchRuntime.Initialize(Model.Device, stderr);
        var folder = Model.RequireFolder(stderr);
        ServedModel served;
        try
        {
            var engine = new EngineOptions();
            served = ServedModel.Load(folder, Model.LoadOptions(stderr), new ServeOptions
            {
                ServedModelName = ServedModelName,
                Template = Template,
                Adapters = Adapters.ToDictionary(a => a.Name, a => a.Path),
                Engine = engine with { MaxBatchSize = MaxBatchSize ?? engine.MaxBatchSize, MaxModelLen = MaxModelLen, CudaGraphs = !EnforceEager },
            });
        }
        catch (OspreyException e) when (e is not UserError)
        {
            throw new UserError(e.Message.TrimEnd('.') + ".", e);
        }
        using (served)
        {
            var app = OpenAiServer.Build(served, new ServerOptions { Host = Host, Port = Port, ApiKey = ApiKey, WebUi = webUi, Log = stderr });
            try
            {
                app.StartAsync(stop).GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new UserError($"--host {Host} --port {Port}: cannot listen there ({e.Message.TrimEnd('.')}); pick another --port or stop the program using it.", e);
            }
            var url = app.Urls.FirstOrDefault() ?? $"http://{Host}:{Port}";
            if (Host is "0.0.0.0" or "::" or "[::]") url = url.Replace("0.0.0.0", Host, StringComparison.Ordinal);
            var adapters = Adapters.Count == 0 ? "" : $" (+ adapters {string.Join(", ", Adapters.Select(a => a.Name))})";
            if (served.Engine.Model.Device.type == TorchSharp.DeviceType.CUDA)
                stderr.WriteLine(served.Engine.GraphsOffReason is null ? "osprey: decode steps run as CUDA graphs." : $"osprey: CUDA graphs off: {served.Engine.GraphsOffReason}.");
            if (webUi) stdout.WriteLine($"osprey: chat app for {served.Name}{adapters} at {url}/ (API at {url}/v1)");
            else stdout.WriteLine($"osprey: serving {served.Name}{adapters} at {url}/v1");
            stdout.Flush();
            try
            {
                app.WaitForShutdownAsync(stop).GetAwaiter().GetResult();
            }
            finally
            {
                ((IAsyncDisposable)app).DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            stderr.WriteLine("osprey: server stopped.");
        }
        return 0;
    }
}
