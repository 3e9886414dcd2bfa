using System.Runtime.InteropServices;

namespace Osprey.Cli.Commands;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM as one request to stop: job schedulers, <c>docker stop</c> and <c>kill</c> send SIGTERM,
/// and a long verb must then end the way Ctrl-C ends it (finish the step, save, exit 130) instead of dying at once.
/// While <paramref name="onStop"/> returns true the signal's default action (ending the process) is suppressed; when it
/// returns false (a second signal, to quit at once) the default action runs.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly ConsoleCancelEventHandler _onCancelKey;
    private readonly PosixSignalRegistration? _onTerm;

    /// <summary>Starts listening; dispose to stop.</summary>
    public StopSignals(Func<bool> onStop)
    {
        _onCancelKey = (_, e) => e.Cancel = onStop();
        Console.CancelKeyPress += _onCancelKey;
        // SIGTERM has no handler on Windows; Ctrl-C is that platform's only signal here.
        if (!OperatingSystem.IsWindows()) _onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => context.Cancel = onStop());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancelKey;
        _onTerm?.Dispose();
    }
}
