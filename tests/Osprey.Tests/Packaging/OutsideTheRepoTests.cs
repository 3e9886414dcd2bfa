using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Osprey.Runtime;

namespace Osprey.Tests.Packaging;

/// <summary>
/// The library as a user gets it: `dotnet pack` of src/Osprey into a local feed, then a fresh console project outside
/// the repository (no Directory.Build.props, no build/Osprey.Native.targets of ours) that only references the package,
/// builds and chats with the tiny qwen2 fixture through <c>OspreyChatClient</c> on the CPU. On Debian 12 this only runs
/// when the package's buildTransitive targets weakened libLibTorchSharp.so's GLIBCXX_3.4.32 need in the consumer's output.
/// The reply must equal transformers' greedy reply recorded in the fixture's infer_golden.json.
/// One pack (of the already built library), one restore and one build: the slowest test of the suite (~15–30 s).
/// </summary>
public sealed class OutsideTheRepoTests
{
    const string Program = """
        using Microsoft.Extensions.AI;
        using Osprey.Models;
        using Osprey.Runtime;
        using Osprey.Serving;

        using var client = OspreyChatClient.Load(args[0], new ModelLoadOptions { Device = DeviceSpec.Cpu, DType = "float32" });
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, args[1])],
            new ChatOptions { MaxOutputTokens = int.Parse(args[2]), Temperature = 0 });
        Console.WriteLine($"reply: {response.Text}");
        Console.WriteLine($"finish: {response.FinishReason}");
        Console.WriteLine($"libtorch: {TorchRuntime.Current!.LibTorchVersion}");
        """;

    [Fact]
    public void AConsoleAppReferencingThePackedLibraryChatsOnTheCpu()
    {
        using var dir = new TempDirectory();
        Assert.False(dir.Path.StartsWith(TestPaths.RepoRoot, StringComparison.Ordinal), "the consumer must live outside the repository");
        var feed = Path.Combine(dir.Path, "feed");
        var app = Path.Combine(dir.Path, "app");
        Directory.CreateDirectory(app);
        // A version no earlier run used, so restore cannot pick a stale copy from the global packages folder.
        var version = "0.0.0-outside." + DateTime.UtcNow.ToString("yyyyMMddHHmmss") + "." + Environment.ProcessId;
        var configuration = typeof(TorchRuntime).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        try
        {
            // The suite built the library already; pack that build rather than compiling it again.
            Run(TestPaths.RepoRoot, "pack", Path.Combine(TestPaths.RepoRoot, "src", "Osprey", "Osprey.csproj"), "--no-build",
                "-c", configuration, "-o", feed, $"-p:PackageVersion={version}", "--nologo");

            // No <clear/>: the machine's own sources (the NuGet mirror TorchSharp and libtorch come from) stay, and the
            // local feed with the packed library is added to them.
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="osprey-local" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            // What `dotnet new console` writes (no RuntimeIdentifier), plus the one package.
            File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Osprey" Version="[{version}]" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), Program);
            Run(app, "build", "--nologo", "-v", "q");

            var outDir = Path.Combine(app, "bin", "Debug", "net10.0");
            var golden = Golden("greeting");
            var output = Run(app, Path.Combine(outDir, "app.dll"), Path.Combine(TestPaths.Fixtures, "parity", "qwen2"),
                golden.Prompt, golden.MaxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture));

            Assert.Contains($"reply: {golden.Response}\n", output, StringComparison.Ordinal);
            Assert.Contains("finish: length\n", output, StringComparison.Ordinal);
            Assert.Contains($"libtorch: {TorchRuntime.BundledLibTorchVersion}\n", output, StringComparison.Ordinal);
            // The package's targets also leave libtorch's Python bindings and test backends out of the output.
            Assert.True(File.Exists(Path.Combine(outDir, "runtimes", "linux-x64", "native", "libtorch_cpu.so")));
            Assert.False(File.Exists(Path.Combine(outDir, "runtimes", "linux-x64", "native", "libtorch_python.so")));
        }
        finally
        {
            // Restore extracted the one-off version into the global packages folder; it is of no use to anyone later.
            var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            try
            {
                var extracted = Path.Combine(packages, "osprey", version);
                if (Directory.Exists(extracted)) Directory.Delete(extracted, recursive: true);
            }
            catch (IOException)
            {
                // A leftover cache folder must not fail the test.
            }
        }
    }

    sealed record GoldenCase(string Prompt, int MaxTokens, string Response);

    /// <summary>A one-user-message case of the qwen2 fixture's infer_golden.json (written by transformers).</summary>
    static GoldenCase Golden(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "parity", "qwen2", "infer_golden.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        var message = Assert.Single(c.GetProperty("messages").EnumerateArray().ToArray());
        Assert.Equal("user", message.GetProperty("role").GetString());
        Assert.Equal("length", c.GetProperty("finish").GetString());
        return new GoldenCase(message.GetProperty("content").GetString()!, c.GetProperty("settings").GetProperty("max_new_tokens").GetInt32(),
            c.GetProperty("response").GetString()!);
    }

    /// <summary>Runs the dotnet host with these arguments; returns stdout, or fails the test with everything it wrote.</summary>
    static string Run(string workingDirectory, params string[] args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        // `dotnet test` hands MSBuild settings to its children through the environment; a user's shell has none of them.
        foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || key.StartsWith("MSBUILD", StringComparison.Ordinal))
                start.Environment.Remove(key);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(300_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish in 5 minutes.\n{stdout}\n{stderr.Result}");
        }
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited with {process.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }
}
