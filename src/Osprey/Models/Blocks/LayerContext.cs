using static TorchSharp.torch;

namespace Osprey.Models.Blocks;

/// <summary>What every layer of one forward pass shares: RoPE tables per distinct RoPE setting, masks per window, the cache.</summary>
internal sealed record LayerContext((Tensor Cos, Tensor Sin)[] Tables, Dictionary<int, AttentionMask> Masks, KvCache? Cache);
