namespace Osprey.Io;

/// <summary>
/// A model file or folder is not in the shape Osprey expects (corrupt or truncated safetensors, malformed index,
/// missing shard). The message is meant for the user: it names the file, the problem and, where there is one,
/// the fix.
/// </summary>
public sealed class OspreyFormatException : OspreyException
{
    /// <summary>Creates the exception with a user-facing message.</summary>
    public OspreyFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a user-facing message and the low-level error behind it.</summary>
    public OspreyFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
