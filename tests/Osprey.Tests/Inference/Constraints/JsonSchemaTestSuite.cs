using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace Osprey.Tests.Inference.Constraints;

/// <summary>
/// JSON Schema's official test suite as the npm package <c>json-schema-test-suite</c> publishes it (draft 4 cases),
/// fetched with <c>npm pack</c> at test time (never committed) into the shared test cache, atomically.
/// </summary>
public static class JsonSchemaTestSuite
{
    /// <summary>The package version the tests use.</summary>
    public const string Version = "0.0.10";

    static readonly object s_lock = new();

    /// <summary>The folder holding the draft-4 case files (anyOf.json, type.json, ...).</summary>
    public static string Draft4Folder()
    {
        var target = Path.Combine(Osprey.Tests.Tokenization.NpmTokenizers.CacheRoot, "npm", $"json-schema-test-suite-{Version}");
        lock (s_lock)
        {
            if (File.Exists(Path.Combine(target, "type.json"))) return target;
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            var work = target + ".tmp-" + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(work);
            try
            {
                var staged = Path.Combine(work, "draft4");
                Directory.CreateDirectory(staged);
                Extract(Pack(work), staged);
                if (!File.Exists(Path.Combine(staged, "type.json")))
                    throw new InvalidOperationException($"npm package json-schema-test-suite@{Version} has no package/tests/draft4/type.json");
                try
                {
                    Directory.Move(staged, target);
                }
                catch (IOException) when (File.Exists(Path.Combine(target, "type.json")))
                {
                    // Another test process unpacked the same files first.
                }
            }
            finally
            {
                Directory.Delete(work, recursive: true);
            }
            return target;
        }
    }

    static string Pack(string dir)
    {
        var spec = $"json-schema-test-suite@{Version}";
        var psi = new ProcessStartInfo("npm", ["pack", spec, "--silent", "--pack-destination", dir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = dir,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start npm");
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"npm pack {spec} took more than 5 minutes");
        }
        if (process.ExitCode != 0) throw new InvalidOperationException($"npm pack {spec} failed ({process.ExitCode}): {stderr.Result}");
        return Directory.GetFiles(dir, "*.tgz").Single();
    }

    static void Extract(string tgz, string destination)
    {
        const string prefix = "package/tests/draft4/";
        using var file = File.OpenRead(tgz);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new TarReader(gzip);
        while (reader.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            if (!entry.Name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var relative = entry.Name[prefix.Length..];
            if (relative.Contains('/', StringComparison.Ordinal) || !relative.EndsWith(".json", StringComparison.Ordinal)) continue;
            entry.ExtractToFile(Path.Combine(destination, relative), overwrite: true);
        }
    }
}
