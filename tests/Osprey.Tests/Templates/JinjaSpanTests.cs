using Osprey.Templates;
using static Osprey.Tests.Templates.TemplateFixtures;

namespace Osprey.Tests.Templates;

/// <summary>
/// Assistant spans derived from the real chat templates of the npm tokenizer packages (rendering only). The expected
/// strings follow from reading each template (tokenizer_config.json's chat_template).
/// </summary>
public sealed class JinjaSpanTests
{
    [Fact]
    public void Qwen3_single_turn_labels_the_empty_think_block_the_model_must_generate_and_im_end()
    {
        var r = JinjaFromNpm("qwen3").Render(OneTurn());
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello there!<|im_end|>\n", r.Text);
        Assert.Equal(["<think>\n\n</think>\n\nHello there!<|im_end|>"], r.LabelledTexts);
        Assert.Equal(0, r.BaseWeight);
    }

    [Fact]
    public void Qwen3_with_thinking_disabled_labels_only_the_answer()
    {
        var options = new TemplateOptions { Extra = new Dictionary<string, object?> { ["enable_thinking"] = false } };
        var r = JinjaFromNpm("qwen3").Render(OneTurn(), options);
        Assert.Equal(["Hello there!<|im_end|>"], r.LabelledTexts);
    }

    [Fact]
    public void Qwen3_history_turns_are_labelled_as_the_template_renders_them()
    {
        // Qwen3's template is not prefix-stable: the last turn gets an empty think block, history turns do not,
        // and reasoning in history turns is dropped.
        var c = new Conversation([
            Msg("user", "Hi"),
            Msg("assistant", "<think>\nGreet back.\n</think>\n\nHello there!"),
            Msg("user", "How are you?"),
            Msg("assistant", "Fine, thanks."),
        ]);
        var r = JinjaFromNpm("qwen3").Render(c);
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there!<|im_end|>\n"
            + "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nFine, thanks.<|im_end|>\n",
            r.Text);
        Assert.Equal(["Hello there!<|im_end|>", "<think>\n\n</think>\n\nFine, thanks.<|im_end|>"], r.LabelledTexts);
        Assert.Equal([1, 3], r.Spans.Select(s => s.MessageIndex));
    }

    [Fact]
    public void Qwen3_final_reasoning_is_kept_and_labelled()
    {
        var c = new Conversation([Msg("user", "2+2?"), Msg("assistant", "<think>\nAdd them.\n</think>\n\n4")]);
        var r = JinjaFromNpm("qwen3").Render(c);
        Assert.Equal(["<think>\nAdd them.\n</think>\n\n4<|im_end|>"], r.LabelledTexts);
    }

    [Fact]
    public void Qwen3_tool_calls_and_tool_results()
    {
        var r = JinjaFromNpm("qwen3").Render(ToolCall());
        Assert.StartsWith("<|im_start|>system\n# Tools\n\nYou may call one or more functions", r.Text);
        Assert.Contains("<|im_start|>user\n<tool_response>\nSunny, 22C\n</tool_response><|im_end|>\n", r.Text);
        Assert.Equal(
            [
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>",
                "<think>\n\n</think>\n\nIt is sunny.<|im_end|>",
            ],
            r.LabelledTexts);
    }

    [Fact]
    public void Llama3_1_labels_content_and_eot()
    {
        var r = JinjaFromNpm("llama3_1").Render(TwoTurns("Be brief."));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello there!<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nFine, thanks.<|eot_id|>",
            r.Text);
        Assert.Equal(["Hello there!<|eot_id|>", "Fine, thanks.<|eot_id|>"], r.LabelledTexts);
    }

    [Fact]
    public void Gemma3_labels_content_and_end_of_turn_but_not_the_newline()
    {
        var r = JinjaFromNpm("gemma3").Render(TwoTurns("Be brief."));
        Assert.Equal(
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello there!<end_of_turn>\n"
            + "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\nFine, thanks.<end_of_turn>\n",
            r.Text);
        Assert.Equal(["Hello there!<end_of_turn>", "Fine, thanks.<end_of_turn>"], r.LabelledTexts);
    }

    [Fact]
    public void Gemma3_trims_content_and_the_span_follows()
    {
        var c = new Conversation([Msg("user", "Hi"), Msg("assistant", "\n  Hello!  \n")]);
        var r = JinjaFromNpm("gemma3").Render(c);
        Assert.Equal(["Hello!<end_of_turn>"], r.LabelledTexts);
    }

    [Fact]
    public void Deepseek_v3_labels_content_and_end_of_sentence()
    {
        var r = JinjaFromNpm("deepseek_v3").Render(TwoTurns("Be brief."));
        Assert.Equal(
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>Hello there!<｜end▁of▁sentence｜>"
            + "<｜User｜>How are you?<｜Assistant｜>Fine, thanks.<｜end▁of▁sentence｜>",
            r.Text);
        Assert.Equal(["Hello there!<｜end▁of▁sentence｜>", "Fine, thanks.<｜end▁of▁sentence｜>"], r.LabelledTexts);
    }

    [Fact]
    public void Last_round_labels_only_the_final_assistant_message()
    {
        var r = JinjaFromNpm("llama3_1").Render(TwoTurns(), new TemplateOptions { LossScale = LossScale.LastRound });
        Assert.Equal(["Fine, thanks.<|eot_id|>"], r.LabelledTexts);
        Assert.Equal(2, r.Spans.Count);
        Assert.Equal(0, r.Spans[0].Weight);
    }

    [Fact]
    public void All_sets_the_base_weight()
    {
        var r = JinjaFromNpm("llama3_1").Render(TwoTurns(), new TemplateOptions { LossScale = LossScale.All });
        Assert.Equal(1, r.BaseWeight);
        Assert.All(r.Spans, s => Assert.Equal(1, s.Weight));
    }

    [Fact]
    public void Message_loss_overrides_the_mode()
    {
        var c = new Conversation([
            Msg("user", "Hi"), Msg("assistant", "Hello there!", loss: false),
            Msg("user", "How are you?"), Msg("assistant", "Fine, thanks."),
        ]);
        Assert.Equal(["Fine, thanks.<|eot_id|>"], JinjaFromNpm("llama3_1").Render(c).LabelledTexts);

        var forced = new Conversation([
            Msg("user", "Hi"), Msg("assistant", "Hello there!", loss: true),
            Msg("user", "How are you?"), Msg("assistant", "Fine, thanks.", loss: 0.5),
        ]);
        var r = JinjaFromNpm("llama3_1").Render(forced, new TemplateOptions { LossScale = LossScale.LastRound });
        Assert.Equal([1.0, 0.5], r.Spans.Select(s => s.Weight));
    }

    [Fact]
    public void System_option_is_inserted_only_when_the_conversation_has_none()
    {
        var t = JinjaFromNpm("llama3_1");
        var inserted = t.Render(OneTurn(), new TemplateOptions { System = "Be brief." });
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>", inserted.Text);
        Assert.Equal(1, inserted.Spans.Single().MessageIndex); // the index refers to the caller's messages

        var own = t.Render(new Conversation([Msg("system", "Mine."), Msg("user", "Hi"), Msg("assistant", "Yo")]), new TemplateOptions { System = "Be brief." });
        Assert.Contains("Mine.", own.Text);
        Assert.DoesNotContain("Be brief.", own.Text);
    }

    [Fact]
    public void Generation_prompt_ends_with_the_assistant_header()
    {
        var prompt = JinjaFromNpm("qwen3").RenderPrompt(new Conversation([Msg("user", "Hi")]));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void Training_conversation_must_end_with_an_assistant_message()
    {
        var e = Assert.Throws<OspreyException>(() => JinjaFromNpm("qwen3").Render(new Conversation([Msg("user", "Hi")])));
        Assert.Contains("must end with an assistant message", e.Message);
    }

    [Fact]
    public void Template_errors_become_one_sentence_osprey_errors()
    {
        var c = new Conversation([Msg("user", "Hi"), Msg("user", "Again"), Msg("assistant", "Yo")]);
        var e = Assert.Throws<OspreyException>(() => JinjaFromNpm("gemma3").Render(c));
        Assert.Contains("Conversation roles must alternate", e.Message);
        Assert.Contains("--template", e.Message);
    }

    [Fact]
    public void Loss_key_on_a_user_message_is_an_error()
    {
        var c = new Conversation([Msg("user", "Hi", loss: true), Msg("assistant", "Yo")]);
        var e = Assert.Throws<OspreyException>(() => JinjaFromNpm("qwen3").Render(c));
        Assert.Contains("loss applies only to assistant messages", e.Message);
    }

    [Fact]
    public void Unknown_roles_are_errors()
    {
        var c = new Conversation([Msg("human", "Hi"), Msg("assistant", "Yo")]);
        var e = Assert.Throws<OspreyException>(() => JinjaFromNpm("qwen3").Render(c));
        Assert.Contains("role 'human'", e.Message);
    }

    [Fact]
    public void A_template_that_drops_history_replies_cannot_be_trained_on_them()
    {
        // Renders only the final assistant message: the first reply has nowhere to carry loss.
        var t = ChatTemplate.FromJinja("{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}\n{% elif loop.last %}A:{{ m.content }}</s>{% endif %}{% endfor %}");
        var e = Assert.Throws<OspreyException>(() => t.Render(TwoTurns()));
        Assert.Contains("Could not locate assistant message 1", e.Message);
        Assert.Contains("--template", e.Message);
        // Without a generation prompt in the template the model writes the "A:" header itself, so it is labelled.
        Assert.Equal(["A:Hello there!</s>"], t.Render(OneTurn()).LabelledTexts);
    }

    [Fact]
    public void Deepseek_v3_tool_calls_are_labelled_as_its_template_writes_them()
    {
        var c = new Conversation([
            Msg("user", "Weather in Paris?"),
            new Dictionary<string, object?>
            {
                ["role"] = "assistant", ["content"] = null,
                ["tool_calls"] = new List<object?> { new Dictionary<string, object?> { ["type"] = "function", ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = "{\"city\": \"Paris\"}" } } },
            },
            Msg("tool", "Sunny, 22C"),
            Msg("assistant", "It is sunny."),
        ]);
        var r = JinjaFromNpm("deepseek_v3").Render(c);
        Assert.Equal(
            [
                "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>",
                "It is sunny.<｜end▁of▁sentence｜>",
            ],
            r.LabelledTexts);
    }

    [Fact]
    public void Diff_region_finds_the_changed_range()
    {
        Assert.Equal((3, 8), Osprey.Templates.JinjaChatTemplate.DiffRegion("ab\nHello<e>", "ab\n<e>"));
        Assert.Equal((3, 3), Osprey.Templates.JinjaChatTemplate.DiffRegion("ab\n<e>", "ab\nX<e>"));
    }
}
