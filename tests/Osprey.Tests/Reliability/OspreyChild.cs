using System.Diagnostics;
using System.Globalization;

namespace Osprey.Tests.Reliability;

/// <summary>
/// The real <c>osprey</c> program as a child process, so a test can signal it as a scheduler or the kernel would
/// (<c>kill -TERM</c>, <c>kill -KILL</c>); stdout and stderr are collected while it runs.
/// </summary>
internal sealed class OspreyChild : IDisposable
{
    readonly Process _process;
    readonly Task<string> _stdout;
    readonly Task<string> _stderr;

    OspreyChild(Process process)
    {
        _process = process;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
    }

    /// <summary>Starts <c>osprey ARGS</c> with <paramref name="environment"/> added to this process's.</summary>
    public static OspreyChild Start(IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "osprey.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        return new OspreyChild(Process.Start(start)!);
    }

    /// <summary>The child's process id.</summary>
    public int Pid => _process.Id;

    /// <summary>Whether the child has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Polls <paramref name="condition"/> until it holds; fails if the child ends first or 60 s pass.</summary>
    public async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            if (_process.HasExited) Assert.Fail($"osprey ended before {what}: exit {_process.ExitCode}\n{await _stderr}");
            Assert.True(DateTime.UtcNow < deadline, $"not {what} within 60 s");
            await Task.Delay(10);
        }
    }

    /// <summary>Sends <paramref name="signal"/> (TERM, KILL) with kill(1), as a job scheduler or the OOM killer would.</summary>
    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Waits (at most 60 s) for the child to end; returns its exit code and output.</summary>
    public async Task<(int ExitCode, string Stdout, string Stderr)> Exit()
    {
        Assert.True(_process.WaitForExit(60_000), "osprey did not end within 60 s");
        return (_process.ExitCode, await _stdout, await _stderr);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
