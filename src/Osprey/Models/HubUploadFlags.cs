using Osprey.Options;

namespace Osprey.Models;

/// <summary>
/// ms-swift's hub upload flags, taken by its training and export verbs: Osprey does not upload, so each prints a notice
/// and changes nothing. Included with <see cref="NoEffectFlagsFromAttribute"/>; a table only, never instantiated.
/// </summary>
[NoEffectFlag("push_to_hub", Upload)]
[NoEffectFlag("hub_model_id", Upload)]
[NoEffectFlag("hub_private_repo", Upload)]
[NoEffectFlag("commit_message", Upload)]
[NoEffectFlag("hub_strategy", Upload)]
public static class HubUploadFlags
{
    private const string Upload = "Osprey does not upload; push the output folder with huggingface-cli upload or modelscope upload";
}
