namespace Osprey.Tokenization;

/// <summary>A named special token and its id (null when the vocabulary lacks it).</summary>
public sealed record SpecialToken(string Content, int? Id);
