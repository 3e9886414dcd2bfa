using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

public sealed partial class KvCache
{
    /// <summary>
    /// Static-shape decoding (CUDA graphs): when set, a one-element int64 device tensor holding the slot
    /// every row writes this step's key/value to. <see cref="Append"/> then writes there with
    /// <c>index_copy_</c> (no host value involved) and returns the whole buffers [B, kv_heads, capacity, D];
    /// the attention mask must hide the slots past it. <see cref="Length"/> is not used in this mode.
    /// </summary>
    internal Tensor? Slot { get; set; }

    (Tensor Keys, Tensor Values) AppendAtSlot(int layer, Tensor keys, Tensor values)
    {
        _keys[layer].index_copy_(2, Slot!, keys);
        _values[layer].index_copy_(2, Slot!, values);
        return (_keys[layer].alias(), _values[layer].alias());
    }
}
