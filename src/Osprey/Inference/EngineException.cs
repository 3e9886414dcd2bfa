namespace Osprey.Inference;

/// <summary>A request the engine refused; <see cref="Kind"/> says which HTTP status fits.</summary>
public sealed class EngineException(EngineErrorKind kind, string message, Exception? inner = null) : OspreyException(message, inner!)
{
    /// <summary>Why.</summary>
    public EngineErrorKind Kind { get; } = kind;
}
