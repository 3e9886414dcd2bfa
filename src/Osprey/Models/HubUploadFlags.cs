using Osprey.Options;

namespace Osprey.Models;

/// <summary>
/// ms-swift's hub upload flags that change nothing here (the upload itself is <see cref="HubPushOptions"/>): each prints a
/// notice. Included with <see cref="NoEffectFlagsFromAttribute"/>; a table only, never instantiated.
/// </summary>
[NoEffectFlag("hub_strategy", "Osprey uploads once, when the verb is done (ms-swift's 'end'); push a checkpoint folder with osprey export --push_to_hub for another")]
public static class HubUploadFlags
{
}
