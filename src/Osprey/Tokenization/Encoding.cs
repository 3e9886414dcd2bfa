namespace Osprey.Tokenization;

/// <summary>Ids of an encoded text with each token's [Start, End) span in UTF-16 chars of the input.</summary>
public sealed record Encoding(int[] Ids, TokenOffset[] Offsets);
