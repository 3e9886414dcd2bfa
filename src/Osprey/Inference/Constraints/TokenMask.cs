namespace Osprey.Inference.Constraints;

/// <summary>
/// The tokens allowed at one step: <see cref="Bits"/>, the mask of the step's lexical state (one array per state,
/// shared by every step and request in that state, so its reference is a cache key for a device copy), less the
/// few <see cref="Refused"/> ids that the real state rules out.
/// </summary>
internal sealed class TokenMask(ulong[] bits, int count, int[] refused)
{
    /// <summary>No token at all.</summary>
    public static TokenMask None { get; } = new([], 0, []);

    /// <summary>A bit per token id (ulong words); end-of-sequence is the caller's to add.</summary>
    public ulong[] Bits { get; } = bits;

    /// <summary>Ids set in <see cref="Bits"/> that are not allowed after all (checked against the whole parse stack).</summary>
    public int[] Refused { get; } = refused;

    /// <summary>True when no token is allowed.</summary>
    public bool IsEmpty => count == Refused.Length;

    /// <summary>True when token <paramref name="id"/> may come next.</summary>
    public bool Allows(int id) =>
        id >= 0 && id < Bits.Length * 64 && (Bits[id >> 6] >> (id & 63) & 1) != 0 && Array.IndexOf(Refused, id) < 0;
}
