namespace Osprey.Tokenization.Jinja;

/// <summary>
/// A chat template could not be parsed or rendered. The message names the template's line and column and the
/// problem; a template's own <c>raise_exception('...')</c> surfaces here with exactly its message, because
/// templates use it to tell the user what is wrong with the conversation.
/// </summary>
public sealed class JinjaException : OspreyException
{
    /// <summary>Creates the error with its message.</summary>
    public JinjaException(string message) : base(message) { }

    /// <summary>Creates the error with its message and the underlying cause.</summary>
    public JinjaException(string message, Exception inner) : base(message, inner) { }
}
