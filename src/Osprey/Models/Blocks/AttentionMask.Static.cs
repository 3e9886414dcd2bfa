using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

internal sealed partial class AttentionMask
{
    /// <summary>
    /// A one-query mask [B, 1, 1, Tk] (true = attend) as given, folded for grouped-query attention by
    /// expanding (no copy) to [B, 1, groups, Tk].
    /// </summary>
    public static AttentionMask FromDecodeMask(Tensor mask, int groups)
    {
        long b = mask.shape[0], k = mask.shape[3];
        var folded = groups > 1 ? mask.expand(b, 1, groups, k) : null;
        return new AttentionMask(mask, folded, false);
    }
}
