using Osprey.Templates;
using static Osprey.Tests.Templates.TemplateFixtures;

namespace Osprey.Tests.Templates;

/// <summary>
/// The ms-swift-style named templates render exactly ms-swift's format. Expected strings are written from the
/// TemplateMeta definitions in ms-swift 3.x (swift/llm/template/...): template/utils.py (ChatmlTemplateMeta,
/// DEFAULT_SYSTEM), template/qwen.py (QwenTemplateMeta, Qwen3Template), template/llama.py (llama, Llama3TemplateMeta),
/// template/llm.py (default, mistral_nemo), template/gemma.py (GemmaTemplateMeta, Gemma3Template),
/// template/microsoft.py (Phi3TemplateMeta), template/deepseek.py (deepseek).
/// </summary>
public sealed class NamedTemplateTests
{
    private static readonly NamedTemplateTokens DeepseekTokens = new("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", true);

    private static RenderedConversation Render(string name, Conversation c, TemplateOptions? o = null, NamedTemplateTokens? tokens = null) =>
        ChatTemplate.Named(name, tokens).Render(c, o);

    [Fact]
    public void Qwen_adds_its_default_system_and_labels_replies_with_im_end()
    {
        var r = Render("qwen", TwoTurns());
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine, thanks.<|im_end|>\n",
            r.Text);
        Assert.Equal(["Hello there!<|im_end|>", "Fine, thanks.<|im_end|>"], r.LabelledTexts);
    }

    [Fact]
    public void Chatml_has_no_default_system()
    {
        var r = Render("chatml", TwoTurns());
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine, thanks.<|im_end|>\n",
            r.Text);
    }

    [Fact]
    public void System_option_replaces_the_default_system_but_not_the_conversations_own()
    {
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi", Render("qwen", TwoTurns(), new TemplateOptions { System = "Be brief." }).Text);
        Assert.StartsWith("<|im_start|>system\nMine.<|im_end|>\n", Render("qwen", TwoTurns("Mine."), new TemplateOptions { System = "Be brief." }).Text);
        Assert.StartsWith("<|im_start|>user\nHi", Render("qwen", TwoTurns(), new TemplateOptions { System = "" }).Text);
    }

    [Fact]
    public void Qwen3_prefixes_an_empty_think_block_to_every_reply_when_training_on_all_rounds()
    {
        var r = Render("qwen3", TwoTurns());
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nFine, thanks.<|im_end|>\n",
            r.Text);
        Assert.Equal(["<think>\n\n</think>\n\nHello there!<|im_end|>", "<think>\n\n</think>\n\nFine, thanks.<|im_end|>"], r.LabelledTexts);
    }

    [Fact]
    public void Qwen3_drops_history_thinking_for_last_round_and_at_inference()
    {
        var c = new Conversation([
            Msg("user", "Hi"), Msg("assistant", "<think>\nGreet.\n</think>\n\nHello there!"),
            Msg("user", "How are you?"), Msg("assistant", "Fine, thanks."),
        ]);
        var r = Render("qwen3", c, new TemplateOptions { LossScale = LossScale.LastRound });
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nFine, thanks.<|im_end|>\n",
            r.Text);
        Assert.Equal(["<think>\n\n</think>\n\nFine, thanks.<|im_end|>"], r.LabelledTexts);

        var prompt = ChatTemplate.Named("qwen3").RenderPrompt(new Conversation([
            Msg("user", "Hi"), Msg("assistant", "<think>\nGreet.\n</think>\n\nHello there!"), Msg("user", "How are you?"),
        ]));
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void Llama3()
    {
        var r = Render("llama3", TwoTurns("Be brief."));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello there!<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nFine, thanks.<|eot_id|>",
            r.Text);
        Assert.Equal(["Hello there!<|eot_id|>", "Fine, thanks.<|eot_id|>"], r.LabelledTexts);
    }

    [Fact]
    public void Llama2_uses_the_llama_default_system()
    {
        var r = Render("llama2", TwoTurns());
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe. "
            + "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
            + "Please ensure that your responses are socially unbiased and positive in nature.\n\n"
            + "If a question does not make any sense, or is not factually coherent, explain why instead of answering something not correct. "
            + "If you don't know the answer to a question, please don't share false information.\n<</SYS>>\n\n"
            + "Hi [/INST]Hello there!</s><s>[INST] How are you? [/INST]Fine, thanks.</s>",
            r.Text);
        Assert.Equal(["Hello there!</s>", "Fine, thanks.</s>"], r.LabelledTexts);
        Assert.Equal("<s>[INST] Hi [/INST]Hello there!</s><s>[INST] How are you? [/INST]Fine, thanks.</s>",
            Render("llama", TwoTurns(), new TemplateOptions { System = "" }).Text);
    }

    [Fact]
    public void Mistral_puts_the_system_prompt_into_the_last_user_turn()
    {
        Assert.Equal("<s>[INST] Hi[/INST]Hello there!</s>[INST] How are you?[/INST]Fine, thanks.</s>", Render("mistral", TwoTurns()).Text);
        var r = Render("mistral", TwoTurns("Be brief."));
        Assert.Equal("<s>[INST] Hi[/INST]Hello there!</s>[INST] Be brief.\n\nHow are you?[/INST]Fine, thanks.</s>", r.Text);
        Assert.Equal(["Hello there!</s>", "Fine, thanks.</s>"], r.LabelledTexts);
    }

    [Fact]
    public void Gemma()
    {
        var r = Render("gemma", TwoTurns());
        Assert.Equal(
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello there!<end_of_turn>\n"
            + "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\nFine, thanks.<end_of_turn>",
            r.Text);
        Assert.Equal(["Hello there!<end_of_turn>", "Fine, thanks.<end_of_turn>"], r.LabelledTexts);
        Assert.StartsWith("<bos><start_of_turn>system\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi", Render("gemma", TwoTurns("Be brief.")).Text);
    }

    [Fact]
    public void Gemma3_text_folds_the_system_prompt_into_the_first_user_turn()
    {
        var r = Render("gemma3_text", TwoTurns("Be brief."));
        Assert.StartsWith("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello there!<end_of_turn>\n", r.Text);
    }

    [Fact]
    public void Phi3_adds_the_tokenizers_bos_only_when_its_post_processor_would()
    {
        const string body = "<|user|>\nHi<|end|>\n<|assistant|>\nHello there!<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\nFine, thanks.<|end|>";
        Assert.Equal(body, Render("phi3", TwoTurns()).Text);
        Assert.Equal("<s>" + body, Render("phi3", TwoTurns(), tokens: new NamedTemplateTokens("<s>", "</s>", true)).Text);
        Assert.Equal(body, Render("phi3", TwoTurns(), tokens: new NamedTemplateTokens("<s>", "</s>", false)).Text);
        Assert.Equal(["Hello there!<|end|>", "Fine, thanks.<|end|>"], Render("phi3", TwoTurns()).LabelledTexts);
    }

    [Fact]
    public void Deepseek_writes_the_tokenizers_bos_and_eos()
    {
        var r = Render("deepseek", TwoTurns(), tokens: DeepseekTokens);
        Assert.Equal(
            "<｜begin▁of▁sentence｜>User: Hi\n\nAssistant:Hello there!<｜end▁of▁sentence｜>User: How are you?\n\nAssistant:Fine, thanks.<｜end▁of▁sentence｜>",
            r.Text);
        Assert.Equal(["Hello there!<｜end▁of▁sentence｜>", "Fine, thanks.<｜end▁of▁sentence｜>"], r.LabelledTexts);
        Assert.StartsWith("<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi", Render("deepseek", TwoTurns("Be brief."), tokens: DeepseekTokens).Text);
    }

    [Fact]
    public void Default_template_has_no_end_marker_between_rounds()
    {
        var r = Render("default", TwoTurns(), tokens: new NamedTemplateTokens("<s>", "</s>", true));
        Assert.Equal(
            "<s>You are a helpful assistant.\n\n### Human:\nHi\n\n### Assistant:\nHello there!\n\n### Human:\nHow are you?\n\n### Assistant:\nFine, thanks.</s>",
            r.Text);
        Assert.Equal(["Hello there!", "Fine, thanks.</s>"], r.LabelledTexts);
    }

    [Fact]
    public void Generation_prompts_end_with_the_assistant_header()
    {
        var c = new Conversation([Msg("user", "Hi"), Msg("assistant", "Hello there!"), Msg("user", "How are you?")]);
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Named("qwen").RenderPrompt(c));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello there!<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            ChatTemplate.Named("llama3").RenderPrompt(c));
        Assert.Equal("<s>[INST] Hi[/INST]Hello there!</s>[INST] Be brief.\n\nHow are you?[/INST]",
            ChatTemplate.Named("mistral").RenderPrompt(c, new TemplateOptions { System = "Be brief." }));
    }

    [Fact]
    public void Loss_scales_and_message_overrides()
    {
        var last = Render("qwen", TwoTurns(), new TemplateOptions { LossScale = LossScale.LastRound });
        Assert.Equal(["Fine, thanks.<|im_end|>"], last.LabelledTexts);

        var all = Render("qwen", TwoTurns(), new TemplateOptions { LossScale = LossScale.All });
        Assert.Equal(1, all.BaseWeight);

        var c = new Conversation([
            Msg("user", "Hi"), Msg("assistant", "Hello there!"),
            Msg("user", "How are you?"), Msg("assistant", "Fine, thanks.", loss: false),
        ]);
        var overridden = Render("llama3", c);
        Assert.Equal(["Hello there!<|eot_id|>"], overridden.LabelledTexts);
        // The suffix follows its reply: no lone <|eot_id|> is trained when the reply is masked.
        Assert.DoesNotContain(overridden.Spans, s => s.Weight > 0 && s.MessageIndex == 3);
    }

    [Fact]
    public void Qwen_tool_calls_use_the_hermes_format()
    {
        var r = Render("qwen", ToolCall());
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather of a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n"
            + "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
            + "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\nSunny, 22C\n</tool_response><|im_end|>\n<|im_start|>assistant\nIt is sunny.<|im_end|>\n",
            r.Text);
        Assert.Equal(
            ["<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>", "It is sunny.<|im_end|>"],
            r.LabelledTexts);
    }

    [Fact]
    public void Ms_swift_tool_call_roles_are_accepted()
    {
        var c = Conversation.FromJson("""
            {"tools": "[{\"name\": \"get_weather\", \"parameters\": {}}]",
             "messages": [
              {"role": "user", "content": "Weather in Paris?"},
              {"role": "tool_call", "content": "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"},
              {"role": "tool_response", "content": "Sunny"},
              {"role": "assistant", "content": "Sunny."}
            ]}
            """);
        var r = Render("qwen", c);
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {}}}\n</tools>", r.Text);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nSunny\n</tool_response>", r.Text);
    }

    [Fact]
    public void Unknown_template_name_is_an_error_naming_the_choices()
    {
        var e = Assert.Throws<OspreyException>(() => ChatTemplate.Named("qwen4"));
        Assert.Contains("Unknown template 'qwen4'", e.Message);
        Assert.Contains("chatml, qwen, qwen3, llama3, llama2, mistral, gemma, phi3, deepseek, default", e.Message);
    }

    [Fact]
    public void Out_of_order_roles_are_errors()
    {
        var twoUsers = new Conversation([Msg("user", "Hi"), Msg("user", "Again"), Msg("assistant", "Yo")]);
        Assert.Contains("right after a user message", Assert.Throws<OspreyException>(() => Render("qwen", twoUsers)).Message);
        var assistantFirst = new Conversation([Msg("assistant", "Yo"), Msg("user", "Hi"), Msg("assistant", "Yo")]);
        Assert.Contains("must start with a user message", Assert.Throws<OspreyException>(() => Render("qwen", assistantFirst)).Message);
        var lateSystem = new Conversation([Msg("user", "Hi"), Msg("system", "S"), Msg("assistant", "Yo")]);
        Assert.Contains("system prompt only as the first message", Assert.Throws<OspreyException>(() => Render("llama3", lateSystem)).Message);
    }

    [Fact]
    public void Unsupported_features_are_errors()
    {
        Assert.Contains("has no tool format", Assert.Throws<OspreyException>(() => Render("llama3", ToolCall())).Message);
        Assert.Contains("writes the tokenizer's BOS token", Assert.Throws<OspreyException>(() => Render("deepseek", TwoTurns())).Message);
        var prompt = Assert.Throws<OspreyException>(() => ChatTemplate.Named("qwen").RenderPrompt(TwoTurns()));
        Assert.Contains("must end with a user or tool message", prompt.Message);
    }
}
