namespace Osprey;

/// <summary>
/// An error the user can fix (a bad file, flag or model folder). The message is one sentence that names
/// the thing and the fix; front ends print it without a stack trace.
/// </summary>
public class OspreyException : Exception
{
    /// <summary>Creates the error with its one-sentence message.</summary>
    public OspreyException(string message) : base(message) { }

    /// <summary>Creates the error with its one-sentence message and the underlying cause.</summary>
    public OspreyException(string message, Exception inner) : base(message, inner) { }
}
