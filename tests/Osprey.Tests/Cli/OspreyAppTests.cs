using Osprey.Cli;

namespace Osprey.Tests.Cli;

public sealed class OspreyAppTests
{
    private static readonly CommandRegistry Registry = new(
    [
        new TestCommand("infer", (options, stdout, _) =>
        {
            var tokens = options.Int("max_new_tokens", 512);
            options.EnsureNoUnknownFlags();
            stdout.WriteLine($"tokens={tokens}");
            return 0;
        }),
        new TestCommand("merge-lora", (options, _, _) =>
        {
            options.EnsureNoUnknownFlags();
            return 0;
        }),
        new TestCommand("crash", (_, _, _) => throw new InvalidOperationException("boom")),
        new TestCommand("refuse", (_, _, _) => throw new UserError("The model folder 'x' has no config.json; point --model at a Hugging Face model folder.")),
        new TestCommand("sloppy", (_, _, _) => 0),
    ]);

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exitCode = OspreyApp.Run(args, stdout, stderr, Registry);
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void UsageListsTheCommands(params string[] args)
    {
        var (exitCode, stdout, stderr) = Run(args);
        Assert.Equal(0, exitCode);
        Assert.Empty(stderr);
        Assert.Contains("Usage: osprey <command>", stdout);
        Assert.Contains("infer", stdout);
        Assert.Contains("Test verb infer.", stdout);
        Assert.Contains("merge-lora", stdout);
        Assert.Contains("--config", stdout);
    }

    [Theory]
    [InlineData("infer", "--help")]
    [InlineData("infer", "--model", "m", "-h")]
    [InlineData("help", "infer")]
    public void VerbHelpShowsItsUsage(params string[] args)
    {
        var (exitCode, stdout, _) = Run(args);
        Assert.Equal(0, exitCode);
        Assert.Contains("Usage: osprey infer", stdout);
        Assert.Contains("--max_new_tokens N", stdout);
        Assert.Contains("--debug", stdout);
    }

    [Fact]
    public void VersionIsTheInformationalVersion()
    {
        var (exitCode, stdout, _) = Run("--version");
        Assert.Equal(0, exitCode);
        Assert.StartsWith("osprey 0.1.0", stdout);
        Assert.Equal($"osprey {OspreyApp.Version}\n", stdout);
    }

    [Fact]
    public void RunsTheVerbWithItsFlags()
    {
        var (exitCode, stdout, stderr) = Run("infer", "--max-new-tokens", "9");
        Assert.Equal(0, exitCode);
        Assert.Equal("tokens=9\n", stdout);
        Assert.Empty(stderr);
    }

    [Fact]
    public void VerbNamesAcceptUnderscores()
    {
        Assert.Equal(0, Run("merge_lora").ExitCode);
    }

    [Fact]
    public void UnknownVerbListsTheVerbsAndSuggests()
    {
        var (exitCode, stdout, stderr) = Run("infr", "--model", "m");
        Assert.Equal(2, exitCode);
        Assert.Empty(stdout);
        Assert.Equal("osprey: Unknown command 'infr' (did you mean infer?); the commands are crash, infer, merge-lora, refuse, sloppy.\n", stderr);
    }

    [Fact]
    public void FlagBeforeVerbIsAUserError()
    {
        var (exitCode, _, stderr) = Run("--model", "m", "infer");
        Assert.Equal(2, exitCode);
        Assert.StartsWith("osprey: '--model' must come after a command", stderr);
    }

    [Fact]
    public void UserErrorIsOneLineWithExitCode2()
    {
        var (exitCode, _, stderr) = Run("infer", "--max_new_tokens", "abc");
        Assert.Equal(2, exitCode);
        Assert.Equal("osprey: --max_new_tokens expects an integer, got 'abc'.\n", stderr);
    }

    [Fact]
    public void UserErrorFromTheVerbIsOneLine()
    {
        var (exitCode, _, stderr) = Run("refuse");
        Assert.Equal(2, exitCode);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void UnknownFlagIsAUserError()
    {
        var (exitCode, _, stderr) = Run("infer", "--max_new_token", "5");
        Assert.Equal(2, exitCode);
        Assert.Contains("did you mean --max_new_tokens?", stderr);
    }

    [Theory]
    [InlineData("--debug")]
    [InlineData("--debug=true")]
    public void DebugShowsTheStackOfAUserError(string debugFlag)
    {
        var (exitCode, _, stderr) = Run("infer", "--max_new_tokens", "abc", debugFlag);
        Assert.Equal(2, exitCode);
        Assert.StartsWith("osprey: --max_new_tokens expects an integer, got 'abc'.\n", stderr);
        Assert.Contains("Osprey.Cli.UserError", stderr);
        Assert.Contains(" at Osprey.Cli.Args.OptionReader", stderr);
    }

    [Fact]
    public void DebugBeforeTheVerbWorksToo()
    {
        var (exitCode, _, stderr) = Run("--debug", "refuse");
        Assert.Equal(2, exitCode);
        Assert.Contains("   at ", stderr);
    }

    [Fact]
    public void InternalErrorIsExitCode1WithHint()
    {
        var (exitCode, _, stderr) = Run("crash");
        Assert.Equal(1, exitCode);
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.Equal("osprey: internal error: boom", lines[0]);
        Assert.Contains("--debug", lines[1]);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void InternalErrorWithDebugShowsTheStack()
    {
        var (exitCode, _, stderr) = Run("crash", "--debug");
        Assert.Equal(1, exitCode);
        Assert.StartsWith("osprey: internal error: boom\n", stderr);
        Assert.Contains("System.InvalidOperationException: boom", stderr);
        Assert.Contains("   at ", stderr);
    }

    [Fact]
    public void DebugFromConfigFileCounts()
    {
        using var file = new TempConfig("c.yaml", "debug: true\n");
        var (_, _, stderr) = Run("crash", "--config", file.Path);
        Assert.Contains("System.InvalidOperationException: boom", stderr);
    }

    [Fact]
    public void VerbThatNeverChecksFlagsIsCaught()
    {
        var (exitCode, _, stderr) = Run("sloppy");
        Assert.Equal(1, exitCode);
        Assert.Contains("EnsureNoUnknownFlags", stderr);
    }

    [Fact]
    public void DefaultRegistryLoadsWithoutTouchingTorch()
    {
        var registry = CommandRegistry.Default;
        Assert.Equal(registry.Commands.Count, registry.Commands.Select(c => c.Name).Distinct().Count());
        Assert.DoesNotContain(registry.Commands, c => c is TestCommand);
    }

    [Fact]
    public void DuplicateCommandNamesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new CommandRegistry(
        [
            new TestCommand("merge-lora", (_, _, _) => 0),
            new TestCommand("merge_lora", (_, _, _) => 0),
        ]));
    }
}
