using Osprey.Models;

namespace Osprey.Tests.Training;

/// <summary>
/// The built-in demo model in a folder of the tests' own. `--model demo` resolves through $XDG_CACHE_HOME, which other
/// test classes point at temporary folders (and delete) while these tests run in parallel.
/// </summary>
internal static class TestDemoModel
{
    private static readonly Lazy<string> s_folder = new(() =>
    {
        Osprey.Runtime.TorchRuntime.Initialize(Osprey.Runtime.DeviceSpec.Cpu);
        return DemoModel.EnsureCreated(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "osprey-tests-demo-" + Environment.ProcessId));
    });

    /// <summary>The folder (created on first use, kept for the test run).</summary>
    public static string Folder => s_folder.Value;
}
