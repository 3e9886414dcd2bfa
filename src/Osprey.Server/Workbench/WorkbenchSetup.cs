namespace Osprey.Server.Workbench;

/// <summary>What the web UI needs beyond its flags: where it runs, how to start <c>osprey</c>, and which verbs it offers.</summary>
public sealed record WorkbenchSetup
{
    /// <summary>The folder jobs run in; relative paths on the page are relative to it.</summary>
    public required string WorkingFolder { get; init; }

    /// <summary>The words that start the running <c>osprey</c> (its executable, or dotnet and osprey.dll); a job's verb and flags follow.</summary>
    public required IReadOnlyList<string> Launcher { get; init; }

    /// <summary>The verbs the page may start; nothing else can be run.</summary>
    public required IReadOnlyList<WorkbenchVerb> Verbs { get; init; }

    /// <summary>Where the job list and the jobs' logs are kept.</summary>
    public string StateFolder => Path.Combine(WorkingFolder, ".osprey-web-ui");

    /// <summary>
    /// The command line's own check of a job's words (verb and flags): null when they would be accepted, else its
    /// error message, so a form is refused exactly as the command would refuse it. Without it the flags are bound by
    /// <see cref="Options.OptionSet.BindStrings{T}"/> only.
    /// </summary>
    public Func<IReadOnlyList<string>, string?>? CheckArguments { get; init; }

    /// <summary>Where the server's own messages go (stderr when null).</summary>
    public TextWriter? Log { get; init; }
}
