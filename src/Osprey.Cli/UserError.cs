namespace Osprey.Cli;

/// <summary>
/// An error the user caused and can fix: a bad flag, a missing file, a malformed config. <c>osprey</c> prints
/// its message as one line and exits with code 2, without a stack trace (which would only hide the message),
/// unless <c>--debug</c> is given.
/// </summary>
/// <remarks>Write the message as one sentence that names the thing at fault and says how to fix it.</remarks>
public sealed class UserError : OspreyException
{
    /// <summary>Creates the error with its one-sentence message.</summary>
    public UserError(string message)
        : base(message)
    {
    }

    /// <summary>Creates the error with its one-sentence message and the exception that revealed it.</summary>
    public UserError(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
