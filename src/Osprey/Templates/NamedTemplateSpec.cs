using System.Diagnostics.CodeAnalysis;

namespace Osprey.Templates;

/// <summary>How a named template writes tools, tool calls and tool results.</summary>
internal enum ToolFormat
{
    /// <summary>The template has no tool format: tools and tool messages are errors.</summary>
    None,

    /// <summary>Hermes (Qwen2.5/Qwen3): tool schemas in the system prompt, &lt;tool_call&gt; blocks, &lt;tool_response&gt; user turns.</summary>
    Hermes,
}

/// <summary>
/// An ms-swift TemplateMeta: the text pieces a conversation is assembled from. <c>{{SYSTEM}}</c>, <c>{{QUERY}}</c>,
/// <c>{{BOS}}</c> and <c>{{EOS}}</c> are placeholders (the last two ms-swift writes as <c>[['bos_token_id']]</c> /
/// <c>[['eos_token_id']]</c>). The layout is
/// <c>[BOS if AutoAddBos] (SystemPrefix | Prefix) Prompt RESPONSE ChatSep Prompt RESPONSE Suffix</c>.
/// </summary>
internal sealed record NamedTemplateSpec
{
    public required string Name { get; init; }

    public string Prefix { get; init; } = "";

    /// <summary>Replaces <see cref="Prefix"/> when there is a system prompt; null when the template has no system slot.</summary>
    public string? SystemPrefix { get; init; }

    public required string Prompt { get; init; }

    /// <summary>Mistral-style templates put the system prompt into the last round's prompt instead of a prefix.</summary>
    public string? SystemPrompt { get; init; }

    /// <summary>Between rounds; null means the template supports one round only.</summary>
    public string? ChatSep { get; init; }

    /// <summary>After the last response (carries loss, trailing whitespace excepted).</summary>
    public string Suffix { get; init; } = "{{EOS}}";

    public string? DefaultSystem { get; init; }

    /// <summary>Put the tokenizer's BOS in front when its post-processor adds one (ms-swift's auto_add_bos).</summary>
    public bool AutoAddBos { get; init; }

    public ToolFormat Tools { get; init; }

    /// <summary>Qwen3: prefix <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> to replies without a think block; drop history thinking where ms-swift does.</summary>
    public string? NoThinkPrefix { get; init; }

    /// <summary>Gemma 3: the system prompt goes in front of the first user message, assistant replies lose surrounding newlines.</summary>
    public bool SystemInFirstUser { get; init; }

    public bool SupportsSystem => SystemPrefix is not null || SystemPrompt is not null || SystemInFirstUser;

    // Sources (ms-swift 3.x, swift/llm/template/...): template/utils.py (chatml, DEFAULT_SYSTEM), template/qwen.py
    // (qwen, qwen3, Qwen3Template.no_think_prefix), template/llama.py (llama = llama2, llama3), template/llm.py
    // (default, mistral_nemo), template/gemma.py (gemma, gemma3_text), template/microsoft.py (phi3),
    // template/deepseek.py (deepseek), plugin/agent_template/hermes.py (tools).
    private const string QwenSystem = "You are a helpful assistant.";

    private const string Llama2System =
        "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe. "
        + "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
        + "Please ensure that your responses are socially unbiased and positive in nature.\n\n"
        + "If a question does not make any sense, or is not factually coherent, explain why instead of answering something not correct. "
        + "If you don't know the answer to a question, please don't share false information.";

    private static readonly NamedTemplateSpec Chatml = new()
    {
        Name = "chatml",
        SystemPrefix = "<|im_start|>system\n{{SYSTEM}}<|im_end|>\n",
        Prompt = "<|im_start|>user\n{{QUERY}}<|im_end|>\n<|im_start|>assistant\n",
        ChatSep = "<|im_end|>\n",
        Suffix = "<|im_end|>\n",
        AutoAddBos = true,
    };

    private static readonly NamedTemplateSpec Qwen = Chatml with
    {
        Name = "qwen",
        DefaultSystem = QwenSystem,
        AutoAddBos = false,
        Tools = ToolFormat.Hermes,
    };

    private static readonly NamedTemplateSpec Qwen3 = Qwen with
    {
        Name = "qwen3",
        DefaultSystem = null,
        NoThinkPrefix = "<think>\n\n</think>\n\n",
    };

    private static readonly NamedTemplateSpec Llama3 = new()
    {
        Name = "llama3",
        Prefix = "<|begin_of_text|>",
        SystemPrefix = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{{SYSTEM}}<|eot_id|>",
        Prompt = "<|start_header_id|>user<|end_header_id|>\n\n{{QUERY}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ChatSep = "<|eot_id|>",
        Suffix = "<|eot_id|>",
    };

    private static readonly NamedTemplateSpec Llama2 = new()
    {
        Name = "llama2",
        Prefix = "<s>[INST] ",
        SystemPrefix = "<s>[INST] <<SYS>>\n{{SYSTEM}}\n<</SYS>>\n\n",
        Prompt = "{{QUERY}} [/INST]",
        ChatSep = "</s><s>[INST] ",
        Suffix = "</s>",
        DefaultSystem = Llama2System,
    };

    private static readonly NamedTemplateSpec Mistral = new()
    {
        Name = "mistral",
        Prefix = "<s>[INST] ",
        Prompt = "{{QUERY}}[/INST]",
        SystemPrompt = "{{SYSTEM}}\n\n{{QUERY}}[/INST]",
        ChatSep = "</s>[INST] ",
        Suffix = "</s>",
    };

    private static readonly NamedTemplateSpec Gemma = new()
    {
        Name = "gemma",
        Prefix = "<bos>",
        SystemPrefix = "<bos><start_of_turn>system\n{{SYSTEM}}<end_of_turn>\n",
        Prompt = "<start_of_turn>user\n{{QUERY}}<end_of_turn>\n<start_of_turn>model\n",
        ChatSep = "<end_of_turn>\n",
        Suffix = "<end_of_turn>",
    };

    private static readonly NamedTemplateSpec Gemma3 = Gemma with
    {
        Name = "gemma3_text",
        SystemPrefix = null,
        SystemInFirstUser = true,
    };

    private static readonly NamedTemplateSpec Phi3 = new()
    {
        Name = "phi3",
        SystemPrefix = "<|system|>\n{{SYSTEM}}<|end|>\n",
        Prompt = "<|user|>\n{{QUERY}}<|end|>\n<|assistant|>\n",
        ChatSep = "<|end|>\n",
        Suffix = "<|end|>",
        AutoAddBos = true,
    };

    private static readonly NamedTemplateSpec Deepseek = new()
    {
        Name = "deepseek",
        Prefix = "{{BOS}}",
        SystemPrefix = "{{BOS}}{{SYSTEM}}\n\n",
        Prompt = "User: {{QUERY}}\n\nAssistant:",
        ChatSep = "{{EOS}}",
        Suffix = "{{EOS}}",
    };

    private static readonly NamedTemplateSpec Default = new()
    {
        Name = "default",
        SystemPrefix = "{{SYSTEM}}\n\n",
        Prompt = "### Human:\n{{QUERY}}\n\n### Assistant:\n",
        ChatSep = "\n\n",
        Suffix = "{{EOS}}",
        DefaultSystem = QwenSystem,
        AutoAddBos = true,
    };

    private static readonly Dictionary<string, NamedTemplateSpec> s_byName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["chatml"] = Chatml,
        ["qwen"] = Qwen,
        ["qwen3"] = Qwen3,
        ["llama3"] = Llama3,
        ["llama2"] = Llama2,
        ["llama"] = Llama2,
        ["mistral"] = Mistral,
        ["mistral_nemo"] = Mistral,
        ["gemma"] = Gemma,
        ["gemma3_text"] = Gemma3,
        ["gemma3"] = Gemma3,
        ["phi3"] = Phi3,
        ["deepseek"] = Deepseek,
        ["default"] = Default,
    };

    /// <summary>The ten names the CLI advertises.</summary>
    public static readonly string[] PrimaryNames = ["chatml", "qwen", "qwen3", "llama3", "llama2", "mistral", "gemma", "phi3", "deepseek", "default"];

    public static IReadOnlyList<string> Names { get; } = s_byName.Keys.ToList();

    public static bool TryGet(string name, [NotNullWhen(true)] out NamedTemplateSpec? spec) => s_byName.TryGetValue(name, out spec);
}
