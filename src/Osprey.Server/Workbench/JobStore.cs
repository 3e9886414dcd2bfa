using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;

namespace Osprey.Server.Workbench;

/// <summary>
/// The web UI's jobs: child <c>osprey</c> processes started with a verb and flags from a form (never another program),
/// their output in a log file each, and the list in <c>jobs.json</c> (written through a temporary file and a rename).
/// A new store re-reads the list and re-attaches to the jobs whose processes still run, so a restarted web UI finds its
/// runs; a job's process carries <see cref="JobVariable"/> so a reused process id is not mistaken for it.
/// </summary>
public sealed class JobStore : IDisposable
{
    /// <summary>The environment variable naming a child's job id.</summary>
    public const string JobVariable = "OSPREY_WEB_UI_JOB";

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    readonly WorkbenchSetup _setup;
    readonly object _gate = new();
    readonly List<WorkbenchJob> _jobs;
    readonly Timer _watch;
    readonly string _listPath;

    /// <summary>Opens the job list of <paramref name="setup"/>'s state folder and re-attaches to jobs still running.</summary>
    public JobStore(WorkbenchSetup setup)
    {
        _setup = setup ?? throw new ArgumentNullException(nameof(setup));
        Directory.CreateDirectory(Path.Combine(setup.StateFolder, "logs"));
        _listPath = Path.Combine(setup.StateFolder, "jobs.json");
        _jobs = Load(_listPath);
        // Jobs started by an earlier web UI are not our children: poll their process ids instead of waiting on them.
        _watch = new Timer(_ => WatchAdopted(), null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    readonly HashSet<string> _children = [];
    bool _disposed;

    /// <summary>Every job, newest first.</summary>
    public IReadOnlyList<WorkbenchJob> List()
    {
        lock (_gate) return [.. _jobs.Select(Refresh).OrderByDescending(j => j.Started)];
    }

    /// <summary>The job called <paramref name="id"/>, or null.</summary>
    public WorkbenchJob? Get(string id)
    {
        lock (_gate) return _jobs.FirstOrDefault(j => j.Id == id) is { } job ? Refresh(job) : null;
    }

    /// <summary>Starts <c>osprey</c> with <paramref name="args"/> as a new job.</summary>
    public WorkbenchJob Start(FormArguments args, string? resumedFrom = null, string? runDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Verb is "app" or "deploy" && args.Get("port") is null) args = args.With("port", FreePort().ToString(CultureInfo.InvariantCulture));
        var id = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        var log = Path.Combine(_setup.StateFolder, "logs", id + ".log");
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = _setup.WorkingFolder };
        // The shell only points stdout and stderr at the log file and then becomes osprey (exec), so the job's pid is
        // osprey's and it writes to a file, not to a pipe that would break when the web UI restarts. setsid keeps a
        // Ctrl-C meant for the web UI away from the jobs.
        foreach (var word in (string[])["-c", "log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null", "osprey-web-ui", log]) start.ArgumentList.Add(word);
        if (File.Exists("/usr/bin/setsid")) start.ArgumentList.Add("/usr/bin/setsid");
        foreach (var word in _setup.Launcher.Concat(args.Argv)) start.ArgumentList.Add(word);
        start.Environment[JobVariable] = id;
        File.WriteAllText(log, "$ " + args.CommandLine + "\n");
        var process = Process.Start(start) ?? throw new OspreyException($"could not start {_setup.Launcher[0]}.");
        var job = new WorkbenchJob
        {
            Id = id, Verb = args.Verb, Values = args.Values, Command = args.CommandLine, Pid = process.Id, Started = DateTimeOffset.UtcNow,
            State = "running", LogPath = log, ResumedFrom = resumedFrom, RunDirectory = runDirectory,
        };
        lock (_gate)
        {
            _jobs.Add(job);
            _children.Add(id);
            Save();
        }
        _ = WaitAsync(process, id);
        return job;
    }

    /// <summary>Asks a running job to stop as Ctrl-C would: a training run finishes its step, saves a checkpoint and exits.</summary>
    /// <exception cref="OspreyException">The job is unknown or not running.</exception>
    public WorkbenchJob Stop(string id)
    {
        lock (_gate)
        {
            var job = Require(id);
            if (!job.IsRunning) throw new OspreyException($"job {id} is not running ({job.State}).");
            PosixSignal.Terminate(job.Pid);
            return Replace(job with { State = "stopping" });
        }
    }

    /// <summary>Starts a training job again from its run's last checkpoint (<c>--resume_from_checkpoint</c>).</summary>
    /// <exception cref="OspreyException">The job is running, unknown, or has no checkpoint.</exception>
    public WorkbenchJob Resume(string id, AllowedPaths allowed, IReadOnlyList<WorkbenchVerb> verbs)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        ArgumentNullException.ThrowIfNull(verbs);
        WorkbenchJob job;
        lock (_gate) job = Require(id);
        if (job.IsRunning) throw new OspreyException($"job {id} is still running; stop it first.");
        var checkpoint = LastCheckpoint(job) ?? throw new OspreyException($"job {id} has no checkpoint-N folder to resume from{(job.RunDirectory is null ? "" : " in " + job.RunDirectory)}.");
        var verb = verbs.FirstOrDefault(v => v.Name == job.Verb) ?? throw new OspreyException($"the verb {job.Verb} is no longer offered.");
        var values = new System.Text.Json.Nodes.JsonObject();
        foreach (var (name, texts) in job.Values) values[name] = new System.Text.Json.Nodes.JsonArray([.. texts.Select(t => (System.Text.Json.Nodes.JsonNode?)t)]);
        var args = FormArguments.Read(verb, values, allowed, _setup.CheckArguments).With("resume_from_checkpoint", checkpoint);
        return Start(args, resumedFrom: id, runDirectory: job.RunDirectory);
    }

    /// <summary>Removes a finished job from the list and deletes its log (its run folder stays).</summary>
    /// <exception cref="OspreyException">The job is unknown or still running.</exception>
    public void Delete(string id)
    {
        lock (_gate)
        {
            var job = Require(id);
            if (job.IsRunning) throw new OspreyException($"job {id} is still running; stop it first.");
            _jobs.Remove(job);
            Save();
            File.Delete(job.LogPath);
        }
    }

    /// <summary>The newest checkpoint-N folder of the job's run, or null.</summary>
    public static string? LastCheckpoint(WorkbenchJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (job.RunDirectory is null || !Directory.Exists(job.RunDirectory)) return null;
        return Directory.EnumerateDirectories(job.RunDirectory, "checkpoint-*")
            .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : -1))
            .Where(c => c.Step >= 0).OrderByDescending(c => c.Step).Select(c => c.Dir).FirstOrDefault();
    }

    /// <summary>The last <paramref name="lines"/> lines of the job's log (progress redraws cut at their last '\r').</summary>
    public static string Tail(WorkbenchJob job, int lines)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (!File.Exists(job.LogPath)) return "";
        using var stream = new FileStream(job.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Seek(Math.Max(0, stream.Length - 256 * 1024), SeekOrigin.Begin);
        var text = new StreamReader(stream).ReadToEnd();
        var all = text.Split('\n').Select(l => l.TrimEnd('\r')).Select(l => l[(l.LastIndexOf('\r') + 1)..]).ToList();
        return string.Join("\n", all.TakeLast(lines));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        // A store that is closed no longer writes the list: a new store (a restarted web UI) owns it now.
        lock (_gate) _disposed = true;
        _watch.Dispose();
    }

    WorkbenchJob Require(string id) => _jobs.FirstOrDefault(j => j.Id == id) ?? throw new OspreyException($"there is no job {id}.");

    WorkbenchJob Replace(WorkbenchJob job)
    {
        var index = _jobs.FindIndex(j => j.Id == job.Id);
        if (index >= 0) _jobs[index] = job;
        Save();
        return job;
    }

    /// <summary>The job with its run folder filled in once the child has created it.</summary>
    WorkbenchJob Refresh(WorkbenchJob job)
    {
        if (job.RunDirectory is not null) return job;
        var parent = job.Values.FirstOrDefault(v => v.Key == "output_dir").Value?.FirstOrDefault()
            ?? (job.Values.FirstOrDefault(v => v.Key == "model").Value?.FirstOrDefault() is { } model ? Path.Combine("output", Path.GetFileName(Path.TrimEndingDirectorySeparator(model))) : null);
        if (parent is null || job.Verb is not ("sft" or "pt" or "rlhf" or "grpo")) return job;
        parent = Path.GetFullPath(parent, _setup.WorkingFolder);
        if (!Directory.Exists(parent)) return job;
        var claimed = _jobs.Select(j => j.RunDirectory).OfType<string>().ToHashSet(StringComparer.Ordinal);
        // A run folder is made by the child after it starts; the oldest such folder no other job has claimed is this job's.
        var found = Directory.EnumerateDirectories(parent).Prepend(parent)
            .Where(d => File.Exists(Path.Combine(d, "args.json")) && !claimed.Contains(d))
            .Select(d => (Dir: d, Made: Directory.GetCreationTimeUtc(d)))
            .Where(c => c.Made >= job.Started.UtcDateTime.AddSeconds(-2))
            .OrderBy(c => c.Made).Select(c => c.Dir).FirstOrDefault();
        return found is null ? job : Replace(job with { RunDirectory = found });
    }

    async Task WaitAsync(Process process, string id)
    {
        using (process)
        {
            await process.WaitForExitAsync().ConfigureAwait(false);
            var code = process.ExitCode;
            lock (_gate)
            {
                if (_jobs.FirstOrDefault(j => j.Id == id) is not { } job) return;
                Replace(job with { State = code == 0 ? "succeeded" : code == 130 ? "stopped" : "failed", ExitCode = code, Ended = DateTimeOffset.UtcNow });
            }
        }
    }

    void WatchAdopted()
    {
        lock (_gate)
        {
            if (_disposed) return;
            foreach (var job in _jobs.ToList())
            {
                if (!job.IsRunning || _children.Contains(job.Id) || PosixSignal.IsJob(job.Pid, job.Id)) continue;
                // Not our child, so its exit code is lost; the log's last words tell a stopped or finished run apart.
                var tail = Tail(job, 5);
                var state = tail.Contains("last_model_checkpoint:", StringComparison.Ordinal) ? (job.State == "stopping" ? "stopped" : "succeeded") : "ended";
                Replace(job with { State = state, Ended = DateTimeOffset.UtcNow });
            }
        }
    }

    void Save()
    {
        if (_disposed) return;
        var temp = _listPath + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(_jobs, Json));
        File.Move(temp, _listPath, overwrite: true);
    }

    static List<WorkbenchJob> Load(string path)
    {
        if (!File.Exists(path)) return [];
        try
        {
            return JsonSerializer.Deserialize<List<WorkbenchJob>>(File.ReadAllText(path), Json) ?? [];
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{path}: the job list is not valid JSON ({e.Message}); move the file away to start with an empty list.", e);
        }
    }

    static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
