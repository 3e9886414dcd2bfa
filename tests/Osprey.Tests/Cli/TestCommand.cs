using Osprey.Cli;
using Osprey.Cli.Args;

namespace Osprey.Tests.Cli;

/// <summary>A verb whose behaviour each test supplies, so the tests need no real (torch-using) verb.</summary>
internal sealed class TestCommand(string name, Func<OptionReader, TextWriter, TextWriter, int> run) : ICommand
{
    public string Name { get; } = name;

    public string Summary => $"Test verb {Name}.";

    public string Usage => "  --max_new_tokens N   Tokens to generate at most.";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => run(options, stdout, stderr);
}
