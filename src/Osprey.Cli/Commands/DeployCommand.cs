using Osprey.Cli.Args;
using Osprey.Serving;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey deploy</c>: an OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, /v1/models).</summary>
internal sealed class DeployCommand : ICommand
{
    public string Name => "deploy";

    public IReadOnlyList<Type> OptionsTypes => [typeof(DeployOptions)];

    public string Summary => "Serve a model over an OpenAI-compatible HTTP API (chat, completions, streaming, LoRA adapters).";

    public string Usage => ServeRunner.Help + "\nRuns until Ctrl-C. Default port 8000. See docs/serving.md.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, CancellationToken.None);

    /// <summary>Serves until <paramref name="stop"/> is cancelled (tests) or Ctrl-C.</summary>
    internal int Run(OptionReader options, TextWriter stdout, TextWriter stderr, CancellationToken stop) =>
        ServeRunner.Run(options, webUi: false, stdout, stderr, stop);
}
