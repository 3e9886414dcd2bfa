using Osprey.Cli;

namespace Osprey.Tests.Cli.Commands;

/// <summary>One run of the real <c>osprey</c> program (the built-in commands), with its output captured.</summary>
internal sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Runs <c>osprey</c> with <paramref name="args"/>.</summary>
    public static CliRun Of(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exitCode = OspreyApp.Run(args, stdout, stderr);
        return new CliRun(exitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The lines of stdout, without the final empty one.</summary>
    public string[] StdoutLines => Lines(Stdout);

    /// <summary>The lines of stderr, without the final empty one.</summary>
    public string[] StderrLines => Lines(Stderr);

    /// <summary>The folder of a committed parity fixture, tests/fixtures/parity/<paramref name="family"/>.</summary>
    public static string Fixture(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    /// <summary>Everything the run printed, for assertion messages.</summary>
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}--- stderr\n{Stderr}";

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
