namespace Osprey.Server;

/// <summary>An error answered to the client as OpenAI's <c>{"error": {...}}</c> with an HTTP status.</summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null, string? type = null) : Exception(message)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;
    /// <summary>The request field at fault, if one is.</summary>
    public string? Param { get; } = param;
    /// <summary>A machine-readable code (such as <c>context_length_exceeded</c>), if any.</summary>
    public string? Code { get; } = code;
    /// <summary>OpenAI's error type; derived from the status when not given.</summary>
    public string Type { get; } = type ?? ApiErrors.TypeFor(status);

    /// <summary>A 400 naming <paramref name="param"/>.</summary>
    public static ApiException Bad(string message, string? param = null, string? code = null) => new(400, message, param, code);
}
