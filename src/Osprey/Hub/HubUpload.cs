using Osprey.Hub.Download;
using Osprey.Hub.ModelScope;
using Osprey.Hub.Upload;
using Osprey.Models;

namespace Osprey.Hub;

/// <summary>
/// The library call behind <c>--push_to_hub true</c> (export, sft, pt, rlhf): uploads a finished folder to ModelScope
/// (default, as downloads) or Hugging Face (<c>--use_hf true</c> / <c>USE_HF=1</c>), with the download's endpoint and
/// token variables (HF_ENDPOINT and HF_TOKEN; MODELSCOPE_DOMAIN and MODELSCOPE_API_TOKEN) unless <c>--hub_token</c> is given.
/// </summary>
public static class HubUpload
{
    /// <summary>
    /// Uploads <paramref name="folder"/> to <see cref="HubPushOptions.HubModelId"/> as one commit, with progress lines on
    /// <paramref name="log"/>, with <paramref name="hubToken"/> (<c>--hub_token</c>) or else the environment's token. Files in <paramref name="exclude"/> (relative paths) stay home. Does nothing and returns null
    /// when <see cref="HubPushOptions.PushToHub"/> is off.
    /// </summary>
    /// <exception cref="OspreyException">A flag is wrong, the token is missing or refused, or the hub kept failing.</exception>
    public static HubUploadResult? Run(string folder, HubPushOptions push, bool? useHf, string? hubToken, TextWriter log, IReadOnlyCollection<string>? exclude = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(push);
        if (!push.PushToHub) return null;
        push.Validate();
        var request = new HubUploadRequest
        {
            RepoId = push.HubModelId!,
            Folder = folder,
            Private = push.HubPrivateRepo,
            CommitMessage = push.CommitMessage ?? $"Upload {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)))} with osprey",
            Exclude = exclude ?? [],
            Log = log,
        };
        var token = string.IsNullOrWhiteSpace(hubToken) ? null : hubToken.Trim();
        if (useHf ?? HubDownloaders.UseHfFromEnvironment())
        {
            var env = HubClientOptions.FromEnvironment();
            using var hf = new HfHubUploader(new HubClientOptions { Endpoint = env.Endpoint, Token = token ?? env.Token });
            return hf.UploadFolderAsync(request, cancel).GetAwaiter().GetResult();
        }
        var ms = ModelScopeClientOptions.FromEnvironment();
        using var uploader = new ModelScopeUploader(new ModelScopeClientOptions { Endpoint = ms.Endpoint, Token = token ?? ms.Token, CacheDir = ms.CacheDir });
        return uploader.UploadFolderAsync(request, cancel).GetAwaiter().GetResult();
    }

    /// <summary>
    /// Checks before long work (training) that the push can start: the flags are valid and a token is at hand, so a run
    /// does not train for hours and then fail on a missing token.
    /// </summary>
    /// <exception cref="OspreyException">A flag is wrong or no token is set.</exception>
    public static void CheckBeforeRun(HubPushOptions push, bool? useHf, string? hubToken)
    {
        ArgumentNullException.ThrowIfNull(push);
        if (!push.PushToHub) return;
        push.Validate();
        if (!string.IsNullOrWhiteSpace(hubToken)) return;
        if (useHf ?? HubDownloaders.UseHfFromEnvironment())
        {
            if (HubClientOptions.FromEnvironment().Token is null)
                throw new OspreyException($"--push_to_hub true to Hugging Face repo {push.HubModelId} needs a token with write access: set HF_TOKEN or pass --hub_token.");
        }
        else if (ModelScopeClientOptions.FromEnvironment().Token is null)
        {
            throw new OspreyException($"--push_to_hub true to ModelScope repo {push.HubModelId} needs an access token: set MODELSCOPE_API_TOKEN or pass --hub_token (or --use_hf true for Hugging Face).");
        }
    }
}
