namespace Osprey.Evaluation;

/// <summary>
/// A prompt for one item: an optional system message and the user's text. A model with the chat template on sends
/// them as messages; with it off, the text alone (after the system message and a blank line) is the prompt.
/// </summary>
public sealed record EvalPrompt(string? System, string User)
{
    /// <summary>The prompt as plain text, for models without a chat template and for the records.</summary>
    public string Text => System is null ? User : System + "\n\n" + User;
}
