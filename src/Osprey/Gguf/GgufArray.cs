namespace Osprey.Gguf;

/// <summary>A GGUF metadata array: its element type and its items (strings, numbers, bools or nested arrays).</summary>
public sealed record GgufArray(GgufValueType ElementType, IReadOnlyList<object> Items);
