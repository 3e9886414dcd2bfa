using Microsoft.Extensions.Hosting;
using Osprey.Cli.Args;
using Osprey.Options;
using Osprey.Server.Workbench;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey web-ui</c>: train, align, evaluate, export, deploy and chat from the browser. Every verb that declares an
/// options records (<see cref="ICommand.OptionsTypes"/>) gets a form, and the page's jobs run this same program as child
/// processes. Parse → <see cref="WorkbenchServer.Build"/> → serve until Ctrl-C.
/// </summary>
internal sealed class WebUiCommand : ICommand
{
    public string Name => "web-ui";

    public string Summary => "Train, align, evaluate, export, deploy and chat in the browser, with live charts (jobs run as osprey child processes).";

    public string Usage => OptionSet.For<WebUiOptions>().Help() + "\nRuns until Ctrl-C; jobs keep running and a restarted web-ui finds them again. See docs/web-ui.md.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, CancellationToken.None);

    /// <summary>Serves until <paramref name="stop"/> is cancelled (tests) or Ctrl-C.</summary>
    internal int Run(OptionReader options, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        var o = options.Bind<WebUiOptions>();
        options.EnsureNoUnknownFlags();
        var setup = new WorkbenchSetup
        {
            WorkingFolder = Environment.CurrentDirectory,
            Launcher = Launcher(),
            Verbs = [.. CommandRegistry.Default.Commands.Where(c => c.OptionsTypes.Count > 0).Select(c => new WorkbenchVerb(c.Name, c.Summary, c.OptionsTypes))],
            CheckArguments = Check,
            Log = stderr,
        };
        Microsoft.AspNetCore.Builder.WebApplication app;
        try
        {
            app = WorkbenchServer.Build(o, setup);
        }
        catch (OspreyException e) when (e is not UserError)
        {
            throw new UserError(e.Message, e);
        }
        try
        {
            app.StartAsync(stop).GetAwaiter().GetResult();
        }
        catch (IOException e)
        {
            throw new UserError($"--host {o.Host} --port {o.Port}: cannot listen there ({e.Message.TrimEnd('.')}); pick another --port or stop the program using it.", e);
        }
        stdout.WriteLine($"osprey: web UI at {app.Urls.FirstOrDefault() ?? $"http://{o.Host}:{o.Port}"}/ (jobs and logs in {setup.StateFolder})");
        stdout.Flush();
        try
        {
            app.WaitForShutdownAsync(stop).GetAwaiter().GetResult();
        }
        finally
        {
            ((IAsyncDisposable)app).DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        stderr.WriteLine("osprey: web UI stopped; jobs still running go on.");
        return 0;
    }

    /// <summary>
    /// Parses and binds a job's words (verb, flags) as <see cref="OspreyApp"/> would before running the verb; null when
    /// they are accepted, else the one-line error the command would print.
    /// </summary>
    internal static string? Check(IReadOnlyList<string> argv)
    {
        if (argv.Count == 0 || CommandRegistry.Default.Find(argv[0]) is not { OptionsTypes.Count: > 0 } command) return $"'{(argv.Count == 0 ? "" : argv[0])}' is not a verb the web UI runs.";
        try
        {
            var reader = new OptionReader(ParsedArgs.Parse([.. argv.Skip(1)]), command.Name, TextWriter.Null);
            foreach (var type in command.OptionsTypes) typeof(OptionReader).GetMethod(nameof(OptionReader.Bind))!.MakeGenericMethod(type).Invoke(reader, null);
            reader.EnsureNoUnknownFlags();
            return null;
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is OspreyException inner)
        {
            return inner.Message;
        }
        catch (OspreyException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// The words that start this very program: its apphost, or the dotnet host with osprey.dll when it was started as
    /// <c>dotnet osprey.dll</c> (then the process is dotnet itself).
    /// </summary>
    internal static IReadOnlyList<string> Launcher()
    {
        var process = Environment.ProcessPath ?? throw new UserError("cannot tell which program is running, so web-ui cannot start osprey jobs; run the osprey executable directly.");
        var dll = typeof(WebUiCommand).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? [process, dll] : [process];
    }
}
