namespace Osprey.Tokenization;

/// <summary>A token's [Start, End) span in UTF-16 chars of the original text; special tokens added by the post-processor have (0, 0).</summary>
public readonly record struct TokenOffset(int Start, int End);
