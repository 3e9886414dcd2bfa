using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Osprey.Gguf;
using Osprey.Templates;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Tokenization;

namespace Osprey.Tests.Gguf;

/// <summary>
/// <c>--to_ollama true</c>: the Modelfile's TEMPLATE, rendered by a small renderer of the Go-template subset Ollama's
/// templates use (written here after Go's text/template rules: trim markers, if/else if/range, eq/ne/and/or), gives
/// for a two-turn conversation with a system message the prompt the model's own chat template gives — transformers'
/// text (tests/fixtures/tokenizers/expected) for the real Qwen 3, Llama 3.1 and Gemma 3 tokenizers, and the published
/// Jinja templates of Llama 2, Mistral v0.1 and Phi-3 rendered by Osprey's Jinja engine (itself checked against
/// transformers). BOS is left to Ollama's tokenizer, so the reference's leading BOS is dropped.
/// </summary>
public sealed class OllamaModelfileTests
{
    private static readonly object?[] SystemTwoTurns =
    [
        Message("system", "You are a terse assistant who answers in one sentence."),
        Message("user", "How many legs does a spider have?"),
        Message("assistant", "A spider has eight legs."),
        Message("user", "And an ant?"),
    ];

    private static Dictionary<string, object?> Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    [Theory]
    [InlineData("qwen3", "chatml", "")]
    [InlineData("llama3_1", "llama3", "<|begin_of_text|>")]
    [InlineData("gemma3", "gemma", "<bos>")]
    public void Template_RendersAsTransformers_ForTheRealTokenizers(string name, string family, string bos)
    {
        var tokenizer = Osprey.Tokenization.Tokenizer.Load(NpmTokenizers.Folder(name));
        Assert.Equal(family, OllamaModelfile.FamilyOf(tokenizer.ChatTemplateSource!));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ParityFiles.ExpectedDir, name + ".json")));
        var expected = doc.RootElement.GetProperty("chats").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "system_multi_turn").GetProperty("text").GetString()!;
        Assert.StartsWith(bos, expected, StringComparison.Ordinal);
        Assert.Equal(expected[bos.Length..], GoTemplate.Render(OllamaModelfile.TemplateOf(family), SystemTwoTurns));
    }

    // Published chat templates (tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf, mistralai/Mistral-7B-Instruct-v0.1,
    // microsoft/Phi-3-mini-4k-instruct). Mistral v0.1's has no system role.
    private const string Llama2Jinja = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
    private const string MistralJinja = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";
    private const string Phi3Jinja = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

    [Theory]
    [InlineData(Llama2Jinja, "llama2", true)]
    [InlineData(MistralJinja, "mistral", false)]
    [InlineData(Phi3Jinja, "phi3", true)]
    public void Template_RendersAsThePublishedJinja(string jinja, string family, bool system)
    {
        Assert.Equal(family, OllamaModelfile.FamilyOf(jinja));
        var messages = system ? SystemTwoTurns : SystemTwoTurns[1..];
        var template = ChatTemplate.FromJinja(jinja, new Dictionary<string, object?> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" });
        var expected = template.RenderPrompt(new Conversation(messages));
        if (expected.StartsWith("<s>", StringComparison.Ordinal)) expected = expected[3..];
        Assert.Equal(expected, GoTemplate.Render(OllamaModelfile.TemplateOf(family), messages));
    }

    [Fact]
    public void Export_ToOllama_WritesTheModelfileBesideTheGguf()
    {
        using var dir = new TempDirectory();
        var fixture = CliRun.Fixture("qwen2");
        var run = CliRun.Of("export", "--model", fixture, "--to_gguf", "true", "--gguf_quant", "f32", "--to_ollama", "true", "--output_dir", dir.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        var text = File.ReadAllText(Path.Combine(dir.Path, "Modelfile"));
        Assert.StartsWith("FROM ./qwen2-f32.gguf\n", text, StringComparison.Ordinal);
        Assert.Contains("TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>", text, StringComparison.Ordinal);
        Assert.Contains("PARAMETER stop \"<|im_end|>\"\n", text, StringComparison.Ordinal);
        using var generation = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture, "generation_config.json")));
        foreach (var key in new[] { "temperature", "top_p", "top_k" })
            if (generation.RootElement.TryGetProperty(key, out var v))
                Assert.Contains($"PARAMETER {key} {v.GetDouble().ToString(CultureInfo.InvariantCulture)}\n", text, StringComparison.Ordinal);

        var alone = CliRun.Of("export", "--model", fixture, "--to_ollama", "true", "--output_dir", dir.File("x"));
        Assert.NotEqual(0, alone.ExitCode);
        Assert.Contains("--to_gguf true", alone.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The subset of Go's text/template the emitted templates use: <c>{{- </c>/<c> -}}</c> trim the whitespace beside
    /// them; actions <c>if</c>, <c>else if</c>, <c>else</c>, <c>end</c>, <c>range .Messages</c> and
    /// <c>range $i, $_ := .Messages</c>; operands <c>.Field</c>, <c>$.Field</c>, <c>$i</c>, strings, integers and
    /// parentheses; functions eq, ne, and, or. Data as Ollama passes it: System (system messages joined by a blank
    /// line) and Messages (Role, Content).
    /// </summary>
    private static class GoTemplate
    {
        private abstract record Node;
        private sealed record Text(string Value) : Node;
        private sealed record Print(string Expr) : Node;
        private sealed record If(List<(string Cond, List<Node> Body)> Branches, List<Node>? Else) : Node;
        private sealed record Range(string? IndexVar, string Expr, List<Node> Body) : Node;

        public static string Render(string template, IReadOnlyList<object?> messages)
        {
            var msgs = messages.Cast<Dictionary<string, object?>>().ToList();
            var root = new Dictionary<string, object?>
            {
                ["System"] = string.Join("\n\n", msgs.Where(m => (string)m["role"]! == "system").Select(m => (string)m["content"]!)),
                ["Messages"] = msgs.Select(m => (object?)new Dictionary<string, object?> { ["Role"] = m["role"], ["Content"] = m["content"] }).ToList(),
            };
            var tokens = Lex(template);
            var pos = 0;
            var nodes = Parse(tokens, ref pos, out var stop);
            Assert.Null(stop);
            var sb = new StringBuilder();
            Exec(nodes, root, root, new Dictionary<string, object?>(), sb);
            return sb.ToString();
        }

        // Text pieces and action bodies, with Go's trim markers applied to the neighbouring text.
        private static List<(bool Action, string Value)> Lex(string s)
        {
            var result = new List<(bool, string)>();
            var i = 0;
            var trimNext = false;
            while (i < s.Length)
            {
                var open = s.IndexOf("{{", i, StringComparison.Ordinal);
                var text = open < 0 ? s[i..] : s[i..open];
                if (trimNext) text = text.TrimStart(' ', '\t', '\r', '\n');
                if (open < 0) { result.Add((false, text)); break; }
                var close = s.IndexOf("}}", open, StringComparison.Ordinal);
                var body = s[(open + 2)..close];
                if (body.StartsWith("- ", StringComparison.Ordinal)) { text = text.TrimEnd(' ', '\t', '\r', '\n'); body = body[2..]; }
                trimNext = body.EndsWith(" -", StringComparison.Ordinal);
                if (trimNext) body = body[..^2];
                result.Add((false, text));
                result.Add((true, body.Trim()));
                i = close + 2;
            }
            return result;
        }

        private static List<Node> Parse(List<(bool Action, string Value)> tokens, ref int pos, out string? stop)
        {
            var nodes = new List<Node>();
            while (pos < tokens.Count)
            {
                var (action, value) = tokens[pos++];
                if (!action) { if (value.Length > 0) nodes.Add(new Text(value)); continue; }
                if (value == "end" || value == "else" || value.StartsWith("else if ", StringComparison.Ordinal)) { stop = value; return nodes; }
                if (value.StartsWith("if ", StringComparison.Ordinal))
                {
                    var branches = new List<(string, List<Node>)>();
                    var cond = value[3..];
                    List<Node>? otherwise = null;
                    while (true)
                    {
                        var body = Parse(tokens, ref pos, out var s);
                        branches.Add((cond, body));
                        if (s == "end") break;
                        if (s == "else") { otherwise = Parse(tokens, ref pos, out var e); Assert.Equal("end", e); break; }
                        Assert.NotNull(s);
                        cond = s![8..];
                    }
                    nodes.Add(new If(branches, otherwise));
                }
                else if (value.StartsWith("range ", StringComparison.Ordinal))
                {
                    var m = Regex.Match(value, @"^range (?:(\$\w+), \$\w+ := )?(\S+)$");
                    Assert.True(m.Success, $"unsupported range '{value}'");
                    var body = Parse(tokens, ref pos, out var e);
                    Assert.Equal("end", e);
                    nodes.Add(new Range(m.Groups[1].Success ? m.Groups[1].Value : null, m.Groups[2].Value, body));
                }
                else nodes.Add(new Print(value));
            }
            stop = null;
            return nodes;
        }

        private static void Exec(List<Node> nodes, object? dot, Dictionary<string, object?> root, Dictionary<string, object?> vars, StringBuilder sb)
        {
            foreach (var node in nodes)
                switch (node)
                {
                    case Text t: sb.Append(t.Value); break;
                    case Print p: sb.Append(Convert.ToString(Eval(p.Expr, dot, root, vars), CultureInfo.InvariantCulture)); break;
                    case If f:
                        var taken = f.Branches.FirstOrDefault(b => Truthy(Eval(b.Cond, dot, root, vars)));
                        if (taken.Body is not null) Exec(taken.Body, dot, root, vars, sb);
                        else if (f.Else is not null) Exec(f.Else, dot, root, vars, sb);
                        break;
                    case Range r:
                        var items = (List<object?>)Eval(r.Expr, dot, root, vars)!;
                        for (int i = 0; i < items.Count; i++)
                        {
                            if (r.IndexVar is not null) vars[r.IndexVar] = i;
                            Exec(r.Body, items[i], root, vars, sb);
                        }
                        break;
                }
        }

        private static bool Truthy(object? v) => v switch { null => false, bool b => b, string s => s.Length > 0, int i => i != 0, _ => true };

        private static object? Eval(string expr, object? dot, Dictionary<string, object?> root, Dictionary<string, object?> vars)
        {
            var tokens = Regex.Matches(expr, "\"[^\"]*\"|[()]|[^\\s()]+").Select(m => m.Value).ToList();
            var pos = 0;
            var value = Command(tokens, ref pos, dot, root, vars);
            Assert.Equal(tokens.Count, pos);
            return value;
        }

        private static object? Command(List<string> tokens, ref int pos, object? dot, Dictionary<string, object?> root, Dictionary<string, object?> vars)
        {
            var head = tokens[pos];
            if (head is "eq" or "ne" or "and" or "or")
            {
                pos++;
                var args = new List<object?>();
                while (pos < tokens.Count && tokens[pos] != ")") args.Add(Operand(tokens, ref pos, dot, root, vars));
                return head switch
                {
                    "eq" => Equals(args[0], args[1]),
                    "ne" => !Equals(args[0], args[1]),
                    "and" => args.All(Truthy),
                    _ => args.Any(Truthy),
                };
            }
            return Operand(tokens, ref pos, dot, root, vars);
        }

        private static object? Operand(List<string> tokens, ref int pos, object? dot, Dictionary<string, object?> root, Dictionary<string, object?> vars)
        {
            var t = tokens[pos++];
            if (t == "(")
            {
                var v = Command(tokens, ref pos, dot, root, vars);
                Assert.Equal(")", tokens[pos++]);
                return v;
            }
            if (t.StartsWith('"')) return t[1..^1];
            if (int.TryParse(t, CultureInfo.InvariantCulture, out var n)) return n;
            if (t.StartsWith("$.", StringComparison.Ordinal)) return root[t[2..]];
            if (t.StartsWith('$')) return vars[t];
            if (t.StartsWith('.')) return ((Dictionary<string, object?>)dot!)[t[1..]];
            throw new InvalidOperationException($"unsupported operand '{t}'");
        }
    }
}
