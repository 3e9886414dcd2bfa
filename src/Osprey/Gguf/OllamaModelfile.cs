using System.Globalization;
using System.Text;
using System.Text.Json;
using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Gguf;

/// <summary>
/// An Ollama <c>Modelfile</c> for an exported GGUF (Ollama's Modelfile reference): <c>FROM ./file.gguf</c>, the
/// model's Jinja chat template translated into Ollama's Go-template syntax for the families Osprey recognises (ChatML,
/// Llama 3, Llama 2, Mistral, Gemma, Phi-3), <c>PARAMETER stop</c> for the template's end-of-turn markers, the
/// sampling parameters of generation_config.json, and the template's default system prompt as <c>SYSTEM</c>.
/// </summary>
public static class OllamaModelfile
{
    // Ollama passes system messages both in .Messages and joined in .System. The templates leave out BOS (Ollama's
    // tokenizer adds it, as llama.cpp's add_bos_token says) and end with the header of the reply.
    static readonly (string Family, string Marker, string Template, string[] Stops)[] s_families =
    [
        ("chatml", "<|im_start|>",
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
            ["<|im_start|>", "<|im_end|>"]),
        ("llama3", "<|start_header_id|>",
            "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
            ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
        ("gemma", "<start_of_turn>",
            "{{- range $i, $_ := .Messages }}{{ if eq .Role \"user\" }}<start_of_turn>user\n{{ if and $.System (eq $i 1) }}{{ $.System }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n" +
            "{{ else if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}{{ end }}<start_of_turn>model\n",
            ["<start_of_turn>", "<end_of_turn>"]),
        ("phi3", "<|end|>",
            "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n",
            ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]),
        ("llama2", "<<SYS>>",
            "{{- range $i, $_ := .Messages }}{{ if eq .Role \"user\" }}{{ if or (eq $i 0) (and $.System (eq $i 1)) }}[INST] {{ if $.System }}<<SYS>>\n{{ $.System }}\n<</SYS>>\n\n{{ end }}" +
            "{{ else }}<s>[INST] {{ end }}{{ .Content }} [/INST]{{ else if eq .Role \"assistant\" }} {{ .Content }} </s>{{ end }}{{ end }}",
            ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]),
        ("mistral", "[INST]",
            "{{- range $i, $_ := .Messages }}{{ if eq .Role \"user\" }}[INST] {{ if and $.System (eq $i 1) }}{{ $.System }}\n\n{{ end }}{{ .Content }} [/INST]" +
            "{{ else if eq .Role \"assistant\" }}{{ .Content }}</s>{{ end }}{{ end }}",
            ["[INST]", "[/INST]"]),
    ];

    /// <summary>The template families translated, by name.</summary>
    public static IReadOnlyList<string> Families => s_families.Select(f => f.Family).ToList();

    /// <summary>
    /// The family of a Jinja chat template, found by the markers only that family's template writes, or null.
    /// </summary>
    public static string? FamilyOf(string jinja)
    {
        ArgumentNullException.ThrowIfNull(jinja);
        // Phi-3 is told from ChatML-like templates by its <|user|> role marker; Llama 2 before Mistral, whose [INST] it shares.
        foreach (var f in s_families)
        {
            if (f.Family == "phi3" && !jinja.Contains("<|user|>", StringComparison.Ordinal)) continue;
            if (jinja.Contains(f.Marker, StringComparison.Ordinal)) return f.Family;
        }
        return null;
    }

    /// <summary>The Ollama (Go) template of <paramref name="family"/> (one of <see cref="Families"/>).</summary>
    public static string TemplateOf(string family) => s_families.First(f => f.Family == family).Template;

    /// <summary>
    /// The Modelfile text for <paramref name="ggufFile"/> (written beside it) from the model folder's tokenizer and
    /// generation_config.json.
    /// </summary>
    public static string Build(string folder, string ggufFile)
    {
        var sb = new StringBuilder();
        sb.Append("FROM ./").Append(Path.GetFileName(ggufFile)).Append('\n');
        var tokenizer = Tokenizer.Load(folder);
        var jinja = tokenizer.ChatTemplateSource;
        var family = jinja is null ? null : FamilyOf(jinja);
        if (family is null)
            sb.Append("# The chat template was not translated (Osprey translates ").Append(string.Join(", ", Families))
              .Append("); Ollama uses the GGUF's tokenizer.chat_template where it recognises it.\n");
        else
        {
            var f = s_families.First(x => x.Family == family);
            sb.Append("TEMPLATE \"\"\"").Append(f.Template).Append("\"\"\"\n");
            foreach (var stop in f.Stops) sb.Append("PARAMETER stop ").Append(Quote(stop)).Append('\n');
            if (DefaultSystem(tokenizer, family) is { } system) sb.Append("SYSTEM \"\"\"").Append(system).Append("\"\"\"\n");
        }
        var generation = Path.Combine(folder, "generation_config.json");
        if (File.Exists(generation))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(generation));
            foreach (var (key, name) in new[] { ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("repetition_penalty", "repeat_penalty") })
                if (doc.RootElement.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number)
                    sb.Append("PARAMETER ").Append(name).Append(' ').Append(v.GetDouble().ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>Writes <see cref="Build"/> as <c>Modelfile</c> beside <paramref name="ggufFile"/> (temp file + rename); returns its path.</summary>
    public static string Write(string folder, string ggufFile)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(ggufFile))!, "Modelfile");
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, Build(folder, ggufFile));
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    // A ChatML template that writes a system turn when the conversation has none (Qwen 2.5's "You are Qwen, ...").
    static string? DefaultSystem(Tokenizer tokenizer, string family)
    {
        if (family != "chatml") return null;
        try
        {
            var prompt = ChatTemplate.FromTokenizer(tokenizer).RenderPrompt(Conversation.FromJson("""{"messages":[{"role":"user","content":"x"}]}"""));
            const string head = "<|im_start|>system\n";
            var start = prompt.IndexOf(head, StringComparison.Ordinal);
            if (start < 0) return null;
            var end = prompt.IndexOf("<|im_end|>", start, StringComparison.Ordinal);
            return end < 0 ? null : prompt[(start + head.Length)..end];
        }
        catch (OspreyException) { return null; }
    }
}
