namespace Osprey.Tokenization.Jinja;

/// <summary>
/// A Jinja2 template as Hugging Face chat templates use it, rendered the way transformers' apply_chat_template
/// renders it (trim_blocks, lstrip_blocks, loop controls, <c>raise_exception</c>, <c>strftime_now</c> and a
/// <c>tojson</c> that is <c>json.dumps</c> without ASCII escaping).
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Stmt> _body;

    private JinjaTemplate(List<Stmt> body) => _body = body;

    /// <summary>Parses the template; syntax errors throw <see cref="JinjaException"/> naming the line and column.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var tokens = Lexer.Tokenize(source);
        return new JinjaTemplate(new Parser(tokens).ParseTemplate());
    }

    /// <summary>
    /// Renders with the given variables: strings, booleans, integers, doubles, null, lists, dictionaries with
    /// string keys and <see cref="System.Text.Json.JsonElement"/> values.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new Renderer(variables).Render(_body);
    }
}
