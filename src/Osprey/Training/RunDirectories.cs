using System.Globalization;
using System.Text.RegularExpressions;

namespace Osprey.Training;

/// <summary>ms-swift's run folders: <c>&lt;output_dir&gt;/v{N}-{yyyyMMdd-HHmmss}</c>, N one more than the largest existing.</summary>
public static partial class RunDirectories
{
    [GeneratedRegex(@"^v(\d+)-")]
    private static partial Regex VersionPattern();

    /// <summary>The next version folder under <paramref name="outputDir"/> (not created), or the folder itself without <paramref name="addVersion"/>.</summary>
    public static string Next(string outputDir, bool addVersion, DateTime now)
    {
        if (!addVersion) return Path.GetFullPath(outputDir);
        var next = 0;
        if (Directory.Exists(outputDir))
        {
            foreach (var dir in Directory.EnumerateDirectories(outputDir))
            {
                var m = VersionPattern().Match(Path.GetFileName(dir));
                if (m.Success && int.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out var n)) next = Math.Max(next, n + 1);
            }
        }
        return Path.GetFullPath(Path.Combine(outputDir, $"v{next}-{now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}"));
    }

    /// <summary>The step number of a <c>checkpoint-N</c> folder name, or null.</summary>
    public static long? CheckpointStep(string path)
    {
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
        return name.StartsWith("checkpoint-", StringComparison.Ordinal) && long.TryParse(name["checkpoint-".Length..], CultureInfo.InvariantCulture, out var s) ? s : null;
    }
}
