using Osprey.Options;

namespace Osprey.Hub;

/// <summary>
/// Everything <c>osprey download</c> takes: which repository (a model or a dataset), which revision and files, from
/// which hub and into which folder. <see cref="HubDownload.Run"/> runs it.
/// </summary>
public sealed record DownloadOptions
{
    /// <summary>The model repository to download.</summary>
    [Option("model", "The model repository to download.", Placeholder = "ORG/NAME")]
    public string? Model { get; init; }

    /// <summary>The dataset repository to download (instead of <see cref="Model"/>).</summary>
    [Option("dataset", "The dataset repository to download (instead of --model).", Placeholder = "ORG/NAME")]
    public string? Dataset { get; init; }

    /// <summary>Branch, tag or commit hash.</summary>
    [Option("revision", "Branch, tag or commit hash.", Placeholder = "R")]
    public string Revision { get; init; } = "main";

    /// <summary>Hugging Face (true) or ModelScope (false); null follows USE_HF.</summary>
    [Option("use_hf", "true: Hugging Face (HF_ENDPOINT, HF_TOKEN); false: ModelScope (MODELSCOPE_DOMAIN, MODELSCOPE_API_TOKEN).", DefaultText = "USE_HF=1 picks Hugging Face, else ModelScope", Placeholder = "B")]
    public bool? UseHf { get; init; }

    /// <summary>Only files matching these patterns (empty: every file).</summary>
    [Option("include", "Only files matching these patterns (e.g. '*.json' '*.safetensors').", Placeholder = "GLOB...")]
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>Skip files matching these patterns.</summary>
    [Option("exclude", "Skip files matching these patterns (e.g. '*.bin' 'original/').", Placeholder = "GLOB...")]
    public IReadOnlyList<string> Exclude { get; init; } = [];

    /// <summary>A plain folder to download into instead of the hub cache.</summary>
    [Option("local_dir", "Download into this plain folder instead of the hub cache.", Placeholder = "DIR")]
    public string? LocalDir { get; init; }

    /// <summary>Never touch the network (also HF_HUB_OFFLINE=1).</summary>
    [Option("offline", "true: never touch the network, print the cached snapshot or fail (also HF_HUB_OFFLINE=1).", Placeholder = "B")]
    public bool Offline { get; init; }

    /// <summary>Files downloaded at once.</summary>
    [Option("max_workers", "Files downloaded at once.")]
    public int MaxWorkers { get; init; } = 8;

    /// <summary>The repository id: --model or --dataset.</summary>
    public string? RepoId => Model ?? Dataset;
}
