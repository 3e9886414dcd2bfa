using Osprey.Options;

namespace Osprey.Hub;

/// <summary>
/// Everything <c>osprey cache</c> takes: <c>list</c> the cached repositories, or <c>rm</c> one (a whole repository or
/// one Hugging Face revision). <see cref="CacheMaintenance.Run"/> runs it.
/// </summary>
public sealed record CacheOptions
{
    /// <summary>Print the cached repositories.</summary>
    [Option("list", "Print the cached repositories: hub, type, repo id, revisions, snapshots, size, folder (also: osprey cache list).")]
    public bool List { get; init; }

    /// <summary>The repository to remove.</summary>
    [Option("rm", "Remove a repository from the caches (every cache that has it unless --use_hf says which; also: osprey cache rm ORG/NAME).", Placeholder = "ORG/NAME")]
    public string? Rm { get; init; }

    /// <summary>rm: the dataset repository of that id, not the model.</summary>
    [Option("dataset", "rm: the dataset repository of that id, not the model.")]
    public bool Dataset { get; init; }

    /// <summary>rm: only this Hugging Face revision.</summary>
    [Option("revision", "rm: remove only this Hugging Face revision (a ref such as main, or a commit hash): its snapshot, the refs pointing at it and the blobs no other snapshot uses.", Placeholder = "R")]
    public string? Revision { get; init; }

    /// <summary>rm: true only the Hugging Face cache, false only the ModelScope cache; null both.</summary>
    [Option("use_hf", "rm: true only the Hugging Face cache, false only the ModelScope cache.", DefaultText = "both", Placeholder = "B")]
    public bool? UseHf { get; init; }

    /// <summary>rm: say what would be removed, remove nothing.</summary>
    [Option("dry_run", "rm: print what would be removed, remove nothing.", Placeholder = "B")]
    public bool DryRun { get; init; }
}
