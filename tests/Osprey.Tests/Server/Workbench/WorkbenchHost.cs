using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Osprey.Cli;
using Osprey.Cli.Commands;
using Osprey.Server.Workbench;

namespace Osprey.Tests.Server.Workbench;

/// <summary>
/// A real <c>osprey web-ui</c> server on 127.0.0.1 (any free port) over a working folder, with the verbs of the real
/// <c>osprey</c> command table; its jobs run the built osprey.dll as child processes.
/// </summary>
internal sealed class WorkbenchHost : IAsyncDisposable
{
    WorkbenchHost(WebApplication app, WorkbenchSetup setup)
    {
        App = app;
        Setup = setup;
        Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        Http = new HttpClient { BaseAddress = new Uri(Url + "/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public WebApplication App { get; }

    public WorkbenchSetup Setup { get; }

    public string Url { get; }

    public HttpClient Http { get; }

    /// <summary>The setup the CLI would make for <paramref name="workingFolder"/>.</summary>
    public static WorkbenchSetup SetupFor(string workingFolder)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "/usr/bin/dotnet";
        if (!Path.IsPathRooted(dotnet)) dotnet = "/usr/bin/dotnet";
        return new WorkbenchSetup
        {
            WorkingFolder = workingFolder,
            Launcher = [File.Exists(dotnet) ? dotnet : "dotnet", Path.Combine(AppContext.BaseDirectory, "osprey.dll")],
            Verbs = [.. CommandRegistry.Default.Commands.Where(c => c.OptionsTypes.Count > 0).Select(c => new WorkbenchVerb(c.Name, c.Summary, c.OptionsTypes))],
            CheckArguments = WebUiCommand.Check,
        };
    }

    public static async Task<WorkbenchHost> StartAsync(WebUiOptions options, WorkbenchSetup setup)
    {
        var app = WorkbenchServer.Build(options with { Port = 0 }, setup);
        await app.StartAsync();
        return new WorkbenchHost(app, setup);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
