using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey download --model ORG/NAME</c> (or <c>--dataset</c>): parse → <see cref="HubDownload.Run"/> → the
/// snapshot folder as the last line on stdout; Ctrl-C or SIGTERM stops cleanly and keeps the finished files.
/// </summary>
internal sealed class DownloadCommand : ICommand
{
    public string Name => "download";

    public IReadOnlyList<Type> OptionsTypes => [typeof(DownloadOptions)];

    public string Summary => "Download a model or dataset from ModelScope or Hugging Face into the local hub cache.";

    public string Usage => OptionSet.For<DownloadOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var download = options.Bind<DownloadOptions>();
        options.EnsureNoUnknownFlags();

        using var cancel = new CancellationTokenSource();
        // Stop the download cleanly on Ctrl-C or SIGTERM; a second signal after this one is handled the same way.
        using var signals = new StopSignals(() =>
        {
            cancel.Cancel();
            return true;
        });
        try
        {
            stdout.WriteLine(HubDownload.Run(download, stderr, cancel.Token));
            return 0;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stderr.WriteLine($"Download of {download.RepoId} cancelled; files finished so far are kept, run the command again to resume.");
            return 130;
        }
    }
}
