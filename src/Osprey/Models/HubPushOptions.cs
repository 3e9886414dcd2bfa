using Osprey.Options;

namespace Osprey.Models;

/// <summary>
/// ms-swift's hub upload flags (<c>--push_to_hub true --hub_model_id org/name</c>): after <c>osprey export</c> writes its
/// folder, or after <c>osprey sft/pt/rlhf</c> saves its last checkpoint, that folder is uploaded to ModelScope (default)
/// or Hugging Face (<c>--use_hf true</c>) by <c>Hub.HubUpload.Run</c>. Declared here, below the Hub layer, because
/// <see cref="ExportOptions"/> (Models) carries it as a group as the training options do.
/// </summary>
public sealed record HubPushOptions
{
    /// <summary>--push_to_hub: upload the output when the verb is done.</summary>
    [Option("push_to_hub", "Upload the exported folder (export) or the last checkpoint (sft, pt, rlhf) to ModelScope, or Hugging Face with --use_hf true (docs/hub.md).")]
    public bool PushToHub { get; init; }

    /// <summary>--hub_model_id: the repository to upload to, created when missing.</summary>
    [Option("hub_model_id", "Repository to upload to (created when missing), e.g. my-org/my-model.", Placeholder = "ORG/NAME")]
    public string? HubModelId { get; init; }

    /// <summary>--hub_private_repo: create the repository private (an existing one keeps its visibility).</summary>
    [Option("hub_private_repo", "Create the repository private (an existing repository keeps its visibility).")]
    public bool HubPrivateRepo { get; init; }

    /// <summary>--commit_message; null is "Upload {folder name} with osprey".</summary>
    [Option("commit_message", "Message of the upload commit.", Placeholder = "TEXT", DefaultText = "Upload <folder> with osprey")]
    public string? CommitMessage { get; init; }

    /// <summary>Checks the flags before any work is done, so a long training run does not end in a bad flag.</summary>
    /// <exception cref="OspreyException">--push_to_hub without a valid --hub_model_id.</exception>
    public void Validate()
    {
        if (!PushToHub) return;
        if (string.IsNullOrWhiteSpace(HubModelId))
            throw new OspreyException("--push_to_hub true needs --hub_model_id ORG/NAME, the repository to upload to.");
        var parts = HubModelId.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p is "." or ".." || p.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))))
            throw new OspreyException($"--hub_model_id {HubModelId} is not a repository id; write it as org/name with letters, digits, '-', '_' or '.', e.g. my-org/my-model.");
    }
}
