namespace Osprey.Server.Workbench;

/// <summary>One child <c>osprey</c> run started from the page, as kept in the job list (jobs.json).</summary>
public sealed record WorkbenchJob
{
    /// <summary>The job's id (time of start plus a random suffix).</summary>
    public required string Id { get; init; }

    /// <summary>The verb.</summary>
    public required string Verb { get; init; }

    /// <summary>The flags as the form gave them, in declaration order.</summary>
    public required IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> Values { get; init; }

    /// <summary>The equivalent command line.</summary>
    public required string Command { get; init; }

    /// <summary>The child's process id.</summary>
    public int Pid { get; init; }

    /// <summary>When it started.</summary>
    public DateTimeOffset Started { get; init; }

    /// <summary>When it ended, once it has.</summary>
    public DateTimeOffset? Ended { get; init; }

    /// <summary>running, stopping, succeeded, stopped, failed or ended (ended while no web UI watched, so its exit code is unknown).</summary>
    public required string State { get; init; }

    /// <summary>The exit code, when known.</summary>
    public int? ExitCode { get; init; }

    /// <summary>The file holding the child's stdout and stderr.</summary>
    public required string LogPath { get; init; }

    /// <summary>The training run's folder (logging.jsonl, checkpoint-N), once it exists.</summary>
    public string? RunDirectory { get; init; }

    /// <summary>The job this one resumes.</summary>
    public string? ResumedFrom { get; init; }

    /// <summary>True while the child may still be running.</summary>
    public bool IsRunning => State is "running" or "stopping";
}
