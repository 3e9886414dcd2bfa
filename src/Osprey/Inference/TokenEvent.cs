namespace Osprey.Inference;

/// <summary>A token as it is generated: which sequence, the id and its index among the new tokens.</summary>
public readonly record struct TokenEvent(int Sequence, int TokenId, int Index);
