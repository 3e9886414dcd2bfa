

namespace Osprey.Inference;

/// <summary>
/// A conversation with a model: each turn's prompt is the whole history rendered with the chat template, and the
/// reply joins the history. <see cref="Run"/> is <c>osprey infer</c>'s interactive chat on a text reader.
/// </summary>
public sealed class ChatSession
{
    /// <summary>What the interactive chat prints before reading a line, as ms-swift's does.</summary>
    public const string Prompt = "<<< ";

    readonly TokenGenerator _generator;
    readonly ChatPrompt _chat;
    readonly SamplingParams _options;
    readonly string? _system;
    readonly List<object?> _history = [];

    /// <summary>A conversation that starts with <paramref name="system"/> (if given) and generates with <paramref name="options"/>.</summary>
    public ChatSession(TokenGenerator generator, ChatPrompt chat, SamplingParams options, string? system)
    {
        _generator = generator;
        _chat = chat;
        _options = options;
        _system = system;
        Clear();
    }

    /// <summary>Forgets the conversation (keeping the system message).</summary>
    public void Clear()
    {
        _history.Clear();
        if (_system is not null) _history.Add(InferenceDataset.Message("system", _system));
    }

    /// <summary>
    /// Answers <paramref name="line"/>; <paramref name="onText"/> (when given) sees the reply as stable text increments.
    /// Throws an <see cref="OspreyException"/>, leaving the history as it was, when the template refuses the turn.
    /// </summary>
    public string Reply(string line, Action<string>? onText = null) => Answer(line, Encode(line), onText);

    /// <summary>The prompt ids of the history plus <paramref name="line"/> as the user's turn.</summary>
    int[] Encode(string line) => _chat.Encode(new List<object?>(_history) { InferenceDataset.Message("user", line) });

    string Answer(string line, int[] prompt, Action<string>? onText)
    {
        var stop = _options.StopTokenIds;
        string reply;
        if (onText is not null)
        {
            var text = new StreamingText(t => _chat.DecodeReply(t, stop));
            _generator.Generate(prompt, _options, e =>
            {
                var delta = text.Add(e.TokenId);
                if (delta.Length > 0) onText(delta);
            });
            var rest = text.Finish();
            if (rest.Length > 0) onText(rest);
            reply = _chat.DecodeReply(text.Ids, stop);
        }
        else
        {
            reply = _chat.DecodeReply(_generator.Generate(prompt, _options).Tokens, stop);
        }
        _history.Add(InferenceDataset.Message("user", line));
        _history.Add(InferenceDataset.Message("assistant", reply));
        return reply;
    }

    /// <summary>
    /// The interactive chat: <c>&lt;&lt;&lt; </c>, a line of input, the reply (streamed when <paramref name="stream"/>);
    /// <c>clear</c> forgets the conversation, <c>exit</c>, <c>quit</c> or the end of input stop. With
    /// <paramref name="echo"/> (stdin not a terminal) the input line is echoed after the prompt, so the output reads
    /// as the conversation it was. A turn the template refuses is reported and the chat goes on.
    /// </summary>
    public int Run(TextReader stdin, TextWriter stdout, TextWriter stderr, bool stream, bool echo)
    {
        stderr.WriteLine("osprey: chat started; 'clear' forgets the conversation, 'exit' or 'quit' (or end of input) stops.");
        while (true)
        {
            stdout.Write(Prompt);
            stdout.Flush();
            var line = stdin.ReadLine();
            if (line is null)
            {
                stdout.WriteLine();
                break;
            }
            if (echo) stdout.WriteLine(line);
            var query = line.Trim();
            if (query is "exit" or "quit") break;
            if (query.Length == 0) continue;
            if (query == "clear")
            {
                Clear();
                stderr.WriteLine("osprey: conversation cleared.");
                continue;
            }
            int[] prompt;
            try
            {
                prompt = Encode(line);
            }
            catch (OspreyException e) // the template refused the conversation; the chat goes on
            {
                stderr.WriteLine($"osprey: {e.Message}");
                continue;
            }
            if (stream) Answer(line, prompt, delta => { stdout.Write(delta); stdout.Flush(); });
            else stdout.Write(Answer(line, prompt, null));
            stdout.WriteLine();
            stdout.Flush();
        }
        return 0;
    }
}
