namespace Osprey.Tests.Cli.Commands;

/// <summary><c>osprey env</c> reports what Osprey found; on the CPU the default dtype is float32.</summary>
public sealed class EnvCommandTests
{
    [Fact]
    public void ReportsVersionsDeviceAndDefaultDtype()
    {
        var run = CliRun.Of("env", "--device", "cpu");

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.StdoutLines;
        // Keys are padded to one column of 14 characters ("libtorch" and "libtorch path" are different keys).
        string Line(string key) => Assert.Single(lines, l => l.StartsWith(key.PadRight(14), StringComparison.Ordinal));
        Assert.Equal($"osprey        {Osprey.Runtime.TorchRuntime.OspreyVersion}", Line("osprey"));
        Assert.StartsWith("osprey        0.1.0", Line("osprey"));
        Assert.Matches(@"^libtorch +\d+\.\d+", Line("libtorch"));
        Assert.True(Directory.Exists(Line("libtorch path")[14..]), Line("libtorch path"));
        Assert.StartsWith("device        cpu ", Line("device"));
        Assert.StartsWith("default dtype float32 ", Line("default dtype"));
    }

    [Fact]
    public void UnknownFlagsAreRefused()
    {
        var run = CliRun.Of("env", "--device", "cpu", "--dtype", "float32");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Stdout);
        Assert.Contains("--dtype", Assert.Single(run.StderrLines));
    }
}
