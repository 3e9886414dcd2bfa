namespace Osprey.Serving;

/// <summary>A reply split into its plain text and the function calls it holds.</summary>
/// <param name="Text">The reply without its tool-call blocks, trimmed.</param>
/// <param name="Calls">The calls in the order written.</param>
public sealed record ParsedReply(string Text, IReadOnlyList<ParsedToolCall> Calls);
