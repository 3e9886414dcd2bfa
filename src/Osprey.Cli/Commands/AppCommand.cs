using Osprey.Cli.Args;
using Osprey.Serving;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey app</c>: the chat web page plus the OpenAI-compatible API of <c>osprey deploy</c>.</summary>
internal sealed class AppCommand : ICommand
{
    public string Name => "app";

    public IReadOnlyList<Type> OptionsTypes => [typeof(DeployOptions)];

    public string Summary => "Chat with a model in the browser (a web page over the same OpenAI-compatible server as deploy).";

    public string Usage => ServeRunner.Help + "\nRuns until Ctrl-C. Default port 7860; open the printed URL. Without --model it serves the built-in demo model (tiny, random weights), as infer does. See docs/serving.md.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, CancellationToken.None);

    /// <summary>Serves until <paramref name="stop"/> is cancelled (tests) or Ctrl-C.</summary>
    internal int Run(OptionReader options, TextWriter stdout, TextWriter stderr, CancellationToken stop) =>
        ServeRunner.Run(options, webUi: true, stdout, stderr, stop);
}
