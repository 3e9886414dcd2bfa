using System.Collections.Concurrent;
using Osprey.Templates;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;
using static Osprey.Tests.Templates.TemplateFixtures;

namespace Osprey.Tests.Templates;

/// <summary>
/// Encoding with the real npm tokenizers: the ids are exactly what inference-side tokenization of the rendered text
/// gives, and the labelled tokens decode to the assistant content plus its end-of-turn token.
/// </summary>
public sealed class TemplateEncodingTests
{
    private static readonly ConcurrentDictionary<string, Tokenizer> s_tokenizers = new();

    private static Tokenizer Tok(string name) => s_tokenizers.GetOrAdd(name, n => Tokenizer.Load(NpmTokenizers.Folder(n)));

    /// <summary>Each run of consecutive labelled tokens, decoded.</summary>
    private static List<string> LabelledRuns(Tokenizer tokenizer, EncodedConversation e)
    {
        var runs = new List<string>();
        var current = new List<int>();
        for (var t = 0; t <= e.Length; t++)
        {
            if (t < e.Length && e.Labels[t] != EncodedConversation.IgnoreIndex)
            {
                Assert.Equal(e.InputIds[t], e.Labels[t]);
                current.Add(e.Labels[t]);
            }
            else if (current.Count > 0)
            {
                runs.Add(tokenizer.Decode(current));
                current.Clear();
            }
        }
        return runs;
    }

    public static TheoryData<string, string[]> ModelTemplates => new()
    {
        // Expected from each model's chat_template: the history reply, then the final one (Qwen3 adds an empty think
        // block to the final turn only, which the model must generate, so it is labelled).
        { "qwen3", ["Hello there!<|im_end|>", "<think>\n\n</think>\n\nFine, thanks.<|im_end|>"] },
        { "llama3_1", ["Hello there!<|eot_id|>", "Fine, thanks.<|eot_id|>"] },
        { "gemma3", ["Hello there!<end_of_turn>", "Fine, thanks.<end_of_turn>"] },
        { "deepseek_v3", ["Hello there!<｜end▁of▁sentence｜>", "Fine, thanks.<｜end▁of▁sentence｜>"] },
    };

    [Theory]
    [MemberData(nameof(ModelTemplates))]
    public void Model_template_labels_exactly_the_replies_and_ids_match_inference_tokenization(string name, string[] expected)
    {
        var tokenizer = Tok(name);
        var template = ChatTemplate.FromTokenizer(tokenizer);
        var conversation = TwoTurns("Be brief.");
        var e = template.Encode(tokenizer, conversation);

        Assert.Equal(tokenizer.ApplyChatTemplate(conversation.Messages), e.Text);
        Assert.Equal(tokenizer.Encode(e.Text, addSpecialTokens: false).Ids, e.InputIds);
        Assert.Equal(e.Length, e.Labels.Length);
        Assert.Equal(expected, LabelledRuns(tokenizer, e));
        Assert.All(Enumerable.Range(0, e.Length), t => Assert.Equal(e.Labels[t] == -100 ? 0f : 1f, e.LossWeights[t]));
    }

    [Fact]
    public void Bos_written_by_the_template_is_not_added_twice()
    {
        foreach (var name in new[] { "llama3_1", "gemma3", "deepseek_v3" })
        {
            var tokenizer = Tok(name);
            var e = ChatTemplate.FromTokenizer(tokenizer).Encode(tokenizer, OneTurn());
            Assert.False(e.AddSpecialTokens);
            Assert.Equal(tokenizer.BosToken!.Id, e.InputIds[0]);
            Assert.NotEqual(tokenizer.BosToken!.Id, e.InputIds[1]);
        }
    }

    [Fact]
    public void Generation_prompt_ids_match_the_tokenizer()
    {
        var tokenizer = Tok("llama3_1");
        var c = new Conversation([Msg("user", "Hi")]);
        var ids = ChatTemplate.FromTokenizer(tokenizer).EncodePrompt(tokenizer, c);
        var text = tokenizer.ApplyChatTemplate(c.Messages, new ChatTemplateOptions { AddGenerationPrompt = true });
        Assert.Equal(tokenizer.Encode(text, addSpecialTokens: false).Ids, ids);
        Assert.Equal("<|start_header_id|>assistant<|end_header_id|>\n\n", tokenizer.Decode(ids[^4..]));
    }

    [Fact]
    public void Qwen3_tool_call_turns()
    {
        var tokenizer = Tok("qwen3");
        var e = ChatTemplate.FromTokenizer(tokenizer).Encode(tokenizer, ToolCall());
        Assert.Equal(tokenizer.ApplyChatTemplate(ToolCall().Messages, new ChatTemplateOptions { Tools = ToolCall().Tools }), e.Text);
        Assert.Equal(tokenizer.Encode(e.Text, addSpecialTokens: false).Ids, e.InputIds);
        Assert.Equal(
            [
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>",
                "<think>\n\n</think>\n\nIt is sunny.<|im_end|>",
            ],
            LabelledRuns(tokenizer, e));
    }

    [Fact]
    public void Loss_scale_modes()
    {
        var tokenizer = Tok("llama3_1");
        var template = ChatTemplate.FromTokenizer(tokenizer);

        var last = template.Encode(tokenizer, TwoTurns(), new TemplateOptions { LossScale = LossScale.LastRound });
        Assert.Equal(["Fine, thanks.<|eot_id|>"], LabelledRuns(tokenizer, last));

        var all = template.Encode(tokenizer, TwoTurns(), new TemplateOptions { LossScale = LossScale.All });
        Assert.Equal(-100, all.Labels[0]);
        Assert.Equal(all.InputIds[1..], all.Labels[1..]);

        var c = new Conversation([
            Msg("user", "Hi"), Msg("assistant", "Hello there!", loss: false),
            Msg("user", "How are you?"), Msg("assistant", "Fine, thanks."),
        ]);
        var overridden = template.Encode(tokenizer, c, new TemplateOptions { LossScale = LossScale.All });
        var masked = tokenizer.Encode("Hello there!<|eot_id|>", addSpecialTokens: false).Ids;
        var at = IndexOf(overridden.InputIds, masked);
        Assert.True(at > 0);
        Assert.All(Enumerable.Range(at, masked.Length), t => Assert.Equal(-100, overridden.Labels[t]));
        Assert.Equal(overridden.InputIds[at - 1], overridden.Labels[at - 1]);
    }

    [Fact]
    public void Fractional_message_loss_becomes_the_token_weight()
    {
        var tokenizer = Tok("qwen3");
        var c = new Conversation([Msg("user", "Hi"), Msg("assistant", "Hello there!", loss: 0.25)]);
        var e = ChatTemplate.FromTokenizer(tokenizer).Encode(tokenizer, c);
        var weights = e.LossWeights.Where((_, t) => e.Labels[t] != -100).Distinct().ToArray();
        Assert.Equal([0.25f], weights);
    }

    [Fact]
    public void System_option_with_the_model_template()
    {
        var tokenizer = Tok("qwen3");
        var e = ChatTemplate.FromTokenizer(tokenizer).Encode(tokenizer, OneTurn(), new TemplateOptions { System = "Be brief." });
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi", e.Text);
        Assert.Equal(["<think>\n\n</think>\n\nHello there!<|im_end|>"], LabelledRuns(tokenizer, e));
    }

    [Fact]
    public void Llama2_has_no_chat_template_so_the_named_template_is_used()
    {
        var tokenizer = Tok("llama2");
        var missing = Assert.Throws<OspreyException>(() => ChatTemplate.FromTokenizer(tokenizer));
        Assert.Contains("--template", missing.Message);

        var template = ChatTemplate.FromTokenizer(tokenizer, "llama2");
        Assert.Equal("llama2", template.Name);
        var e = template.Encode(tokenizer, TwoTurns("Be brief."));
        Assert.Equal("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello there!</s><s>[INST] How are you? [/INST]Fine, thanks.</s>", e.Text);
        Assert.False(e.AddSpecialTokens);
        Assert.Equal(tokenizer.Encode(e.Text, addSpecialTokens: false).Ids, e.InputIds);
        Assert.Equal(2, e.InputIds.Count(id => id == tokenizer.BosToken!.Id)); // <s> opens both rounds
        Assert.Equal(["Hello there!</s>", "Fine, thanks.</s>"], LabelledRuns(tokenizer, e));
    }

    [Fact]
    public void Named_templates_take_bos_and_eos_from_the_tokenizer()
    {
        var deepseek = Tok("deepseek_v3");
        var e = ChatTemplate.FromTokenizer(deepseek, "deepseek").Encode(deepseek, OneTurn());
        Assert.Equal("<｜begin▁of▁sentence｜>User: Hi\n\nAssistant:Hello there!<｜end▁of▁sentence｜>", e.Text);
        Assert.Equal(["Hello there!<｜end▁of▁sentence｜>"], LabelledRuns(deepseek, e));

        // chatml adds the BOS the tokenizer's post-processor adds (ms-swift's auto_add_bos): llama3 adds one, qwen3 none.
        var llama = Tok("llama3_1");
        var chatml = ChatTemplate.FromTokenizer(llama, "chatml").Encode(llama, OneTurn());
        Assert.StartsWith("<|begin_of_text|><|im_start|>user\nHi", chatml.Text);
        Assert.Equal(llama.Encode(chatml.Text, addSpecialTokens: false).Ids, chatml.InputIds);
        var qwen = Tok("qwen3");
        Assert.StartsWith("<|im_start|>user", ChatTemplate.FromTokenizer(qwen, "chatml").Encode(qwen, OneTurn()).Text);
    }

    [Fact]
    public void Named_qwen_on_the_qwen3_tokenizer()
    {
        var tokenizer = Tok("qwen3");
        var e = ChatTemplate.FromTokenizer(tokenizer, "qwen").Encode(tokenizer, TwoTurns());
        Assert.Equal(tokenizer.Encode(e.Text, addSpecialTokens: false).Ids, e.InputIds);
        Assert.Equal(["Hello there!<|im_end|>", "Fine, thanks.<|im_end|>"], LabelledRuns(tokenizer, e));
        // The newline after the last <|im_end|> is in the text but carries no loss.
        Assert.Equal("\n", tokenizer.Decode([e.InputIds[^1]]));
        Assert.Equal(-100, e.Labels[^1]);
    }

    [Fact]
    public void Unknown_template_for_a_tokenizer()
    {
        var e = Assert.Throws<OspreyException>(() => ChatTemplate.FromTokenizer(Tok("qwen3"), "nosuch"));
        Assert.Contains("Unknown template 'nosuch'", e.Message);
    }

    [Fact]
    public void Truncation_strategies()
    {
        var tokenizer = Tok("qwen3");
        var e = ChatTemplate.Named("qwen").Encode(tokenizer, TwoTurns());
        var n = e.Length;

        Assert.Same(e, e.Truncate(n, TruncationStrategy.Delete));
        Assert.Null(e.Truncate(n - 1, TruncationStrategy.Delete));

        var left = e.Truncate(10, TruncationStrategy.Left)!;
        Assert.True(left.Truncated);
        Assert.Equal(e.InputIds[(n - 10)..], left.InputIds);
        Assert.Equal(e.Labels[(n - 10)..], left.Labels);
        Assert.Equal(e.LossWeights[(n - 10)..], left.LossWeights);

        var right = e.Truncate(10, TruncationStrategy.Right)!;
        Assert.Equal(e.InputIds[..10], right.InputIds);
        Assert.Equal(e.Labels[..10], right.Labels);
        Assert.Equal(e.Offsets[..10], right.Offsets);

        Assert.Throws<OspreyException>(() => e.Truncate(0, TruncationStrategy.Left));
        Assert.Equal(TruncationStrategy.Left, TemplateFlags.ParseTruncationStrategy("left"));
        Assert.Contains("use delete, left or right", Assert.Throws<OspreyException>(() => TemplateFlags.ParseTruncationStrategy("split")).Message);
        Assert.Equal(LossScale.LastRound, TemplateFlags.ParseLossScale("last_round"));
        Assert.Contains("use default, last_round or all", Assert.Throws<OspreyException>(() => TemplateFlags.ParseLossScale("react")).Message);
    }

    private static int IndexOf(int[] haystack, int[] needle)
    {
        for (var i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        }
        return -1;
    }
}
