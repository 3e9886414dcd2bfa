using Microsoft.Extensions.Hosting;
using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Server;
using Osprey.Serving;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// The serving loop <c>osprey deploy</c> and <c>osprey app</c> both run: bind <see cref="DeployOptions"/>, load the
/// model, start the OpenAI-compatible server, print where it listens, run until Ctrl-C.
/// </summary>
internal static class ServeRunner
{
    /// <summary>Help of the verbs' flags.</summary>
    public static string Help => OptionSet.For<DeployOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<DeployOptions>());

    /// <summary>Binds and checks the flags, then serves until <paramref name="stop"/> is cancelled or Ctrl-C.</summary>
    public static int Run(OptionReader o, bool webUi, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        var deploy = o.Bind<DeployOptions>();
        o.EnsureNoUnknownFlags();
        var adapters = deploy.Validate();
        if (InferOptions.BackendNotice(deploy.InferBackend) is { } backend) stderr.WriteLine(backend);
        var (modelOptions, template) = AdapterBaseModel.Resolve([.. adapters.Select(x => x.Path)], deploy.Model, deploy.Template);
        // `osprey app` without --model opens the built-in demo model, as `osprey infer` does; deploy serves only what it is given.
        if (webUi && modelOptions.Model is null)
        {
            modelOptions = modelOptions with { Model = "demo" };
            stderr.WriteLine("osprey: no --model given; serving the built-in demo model (tiny Llama, random weights).");
        }
        var model = new ModelFlags(modelOptions);
        if (model.Model is null) throw new UserError("--model is required; pass a Hugging Face model folder or a hub id (org/name).");
        return Serve(model, deploy with { Template = template }, adapters, webUi, stdout, stderr, stop);
    }

    /// <summary>Loads the model, serves it until <paramref name="stop"/> is cancelled or Ctrl-C, then shuts down.</summary>
    private static int Serve(ModelFlags model, DeployOptions deploy, IReadOnlyList<(string Name, string Path)> adapterList, bool webUi,
        TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        var runtime = Runtime.TorchRuntime.Initialize(model.Device, stderr);
        var folder = model.RequireFolder(stderr);
        // A tensor-parallel worker started by rank 0 below: it repeats rank 0's model steps on its shard, no server.
        if (TensorParallelWorker.IsWorkerProcess) return TensorParallelWorker.Run(folder, model.LoadOptions(stderr), stderr);
        var host = deploy.Host;
        var port = deploy.PortFor(webUi);
        if (deploy.TensorParallel.Size > 1) Models.TensorParallelShard.CheckFolder(folder, deploy.TensorParallel.Size);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(stop);
        using var group = deploy.TensorParallel.Size > 1
            ? Osprey.Distributed.TensorParallelGroup.Start(deploy.TensorParallel.Size, OspreyApp.WorkerCommand, runtime.Device, stderr, lost =>
            {
                stderr.WriteLine($"osprey: {lost}.");
                stopping.Cancel();
            })
            : null;
        ServedModel served;
        try
        {
            served = ServedModel.Load(folder, model.LoadOptions(stderr) with { TensorParallel = group }, deploy.ToServeOptions(adapterList));
        }
        catch (OspreyException e) when (e is not UserError)
        {
            // The loader's messages may lack the final period that a one-line error ends with.
            throw new UserError(e.Message.TrimEnd('.') + ".", e);
        }
        stop = stopping.Token;
        using (served)
        {
            var app = OpenAiServer.Build(served, new ServerOptions { Host = host, Port = port, ApiKey = deploy.ApiKey, WebUi = webUi, Log = stderr });
            try
            {
                app.StartAsync(stop).GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new UserError($"--host {host} --port {port}: cannot listen there ({e.Message.TrimEnd('.')}); pick another --port or stop the program using it.", e);
            }
            var url = app.Urls.FirstOrDefault() ?? $"http://{host}:{port}";
            if (host is "0.0.0.0" or "::" or "[::]") url = url.Replace("0.0.0.0", host, StringComparison.Ordinal);
            var adapters = adapterList.Count == 0 ? "" : $" (+ adapters {string.Join(", ", adapterList.Select(a => a.Name))})";
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
        return group?.Lost is null ? 0 : 1;
    }
}
