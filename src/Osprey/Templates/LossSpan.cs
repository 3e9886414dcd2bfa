namespace Osprey.Templates;

/// <summary>A [Start, End) range of the rendered text that carries loss with the given weight.</summary>
/// <param name="Start">First UTF-16 char of the range.</param>
/// <param name="End">One past the last char.</param>
/// <param name="Weight">Loss weight of the tokens that start inside the range (0 = no loss).</param>
/// <param name="MessageIndex">The message (index into the caller's list after normalization) the range belongs to.</param>
public readonly record struct LossSpan(int Start, int End, double Weight, int MessageIndex);
