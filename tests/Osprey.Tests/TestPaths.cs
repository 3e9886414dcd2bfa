namespace Osprey.Tests;

/// <summary>Locates the repository from the test binaries, so fixtures are found whatever the working directory.</summary>
public static class TestPaths
{
    private static readonly Lazy<string> s_repoRoot = new(FindRepoRoot);

    /// <summary>The repository root: the nearest ancestor of the test binaries that has <c>tests/fixtures</c>.</summary>
    public static string RepoRoot => s_repoRoot.Value;

    /// <summary>The shared fixtures folder, <c>tests/fixtures</c>.</summary>
    public static string Fixtures => Path.Combine(RepoRoot, "tests", "fixtures");

    private static string FindRepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (Directory.Exists(Path.Combine(directory.FullName, "tests", "fixtures")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException($"No ancestor of {AppContext.BaseDirectory} has a tests/fixtures folder; run the tests from a checkout of the repository.");
    }
}
