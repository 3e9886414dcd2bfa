using System.Text;

namespace Osprey.Reporting;

/// <summary>
/// A writer for messages that share a terminal with a <see cref="ProgressReporter"/> line: before each message it ends
/// the bar's line (<see cref="ProgressReporter.EndLine"/>), so "osprey: saved …" or an eval line starts on a line of
/// its own instead of after the bar. <paramref name="reporter"/> gives the current reporter (null: none yet).
/// </summary>
public sealed class ProgressAwareWriter(TextWriter inner, Func<ProgressReporter?> reporter) : TextWriter
{
    readonly object _gate = new();
    bool _atLineStart = true;

    /// <summary>The writer messages go to.</summary>
    public TextWriter Inner => inner;

    /// <inheritdoc />
    public override Encoding Encoding => inner.Encoding;

    /// <inheritdoc />
    public override void Write(char value)
    {
        lock (_gate)
        {
            Before();
            inner.Write(value);
            _atLineStart = value == '\n';
        }
    }

    /// <inheritdoc />
    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        lock (_gate)
        {
            Before();
            inner.Write(value);
            _atLineStart = value[^1] == '\n';
        }
    }

    /// <inheritdoc />
    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    /// <inheritdoc />
    public override void WriteLine(string? value) => Write((value ?? "") + NewLine);

    /// <inheritdoc />
    public override void Flush() => inner.Flush();

    /// <summary>Only a message's first character ends the bar's line; the rest of the message follows it.</summary>
    void Before()
    {
        if (_atLineStart) reporter()?.EndLine();
    }
}
