using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Evaluation;
using Osprey.Hub.Download;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Hub.Download;
using Parquet.Serialization;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// IFEval's instruction checks against hand-computed cases read off the reference implementation's definitions
/// (google-research instruction_following_eval: each regex, split, strip and relation), one passing and one failing
/// response per instruction; strict against loose (the reference's first/last-line and '*' variants); and made-up
/// IFEval-shaped rows (jsonl from the fake Hugging Face hub, Parquet from a local folder) through `osprey eval`
/// against a pattern server, whose four accuracies are counted by hand, the instruction level pooled over
/// instructions as the paper defines it.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class IfEvalTests
{
    [Theory]
    [InlineData("keywords:existence", """{"keywords": ["apple", "pie"]}""", "I ate an Apple PIE.", true)]
    [InlineData("keywords:existence", """{"keywords": ["apple", "pie"]}""", "apple only", false)]
    [InlineData("keywords:frequency", """{"keyword": "cat", "relation": "at least", "frequency": 3}""", "cat Cat CAT", true)]
    [InlineData("keywords:frequency", """{"keyword": "cat", "relation": "at least", "frequency": 3}""", "cat cat", false)]
    [InlineData("keywords:frequency", """{"keyword": "cat", "relation": "less than", "frequency": 2}""", "concatenate a cat", false)]   // substring count: 2
    [InlineData("keywords:forbidden_words", """{"forbidden_words": ["bad"]}""", "badly done", true)]
    [InlineData("keywords:forbidden_words", """{"forbidden_words": ["bad"]}""", "a BAD day", false)]
    [InlineData("keywords:letter_frequency", """{"letter": "z", "let_relation": "less than", "let_frequency": 2}""", "a z", true)]
    [InlineData("keywords:letter_frequency", """{"letter": "z", "let_relation": "less than", "let_frequency": 2}""", "Zz", false)]
    [InlineData("language:response_language", """{"language": "de"}""", "Das ist nicht gut, und die Katze ist hier.", true)]
    [InlineData("language:response_language", """{"language": "de"}""", "This is the answer and it is fine.", false)]
    [InlineData("language:response_language", """{"language": "ru"}""", "Это не так, и что это?", true)]
    [InlineData("language:response_language", """{"language": "uk"}""", "Це не так, і що це?", true)]
    [InlineData("language:response_language", """{"language": "hi"}""", "यह एक अच्छा दिन है और मैं खुश हूँ।", true)]
    [InlineData("language:response_language", """{"language": "ja"}""", "これは日本語の文です。", true)]
    [InlineData("language:response_language", """{"language": "ko"}""", "안녕하세요 반갑습니다", true)]
    [InlineData("language:response_language", """{"language": "ko"}""", "これは日本語の文です。", false)]
    [InlineData("language:response_language", """{"language": "fr"}""", "12345", true)]   // no letters: langdetect raises, counted as followed
    [InlineData("length_constraints:number_sentences", """{"num_sentences": 3, "relation": "less than"}""", "Mr. Smith went home. He slept.", true)]
    [InlineData("length_constraints:number_sentences", """{"num_sentences": 3, "relation": "less than"}""", "One. Two! Three?", false)]
    [InlineData("length_constraints:number_sentences", """{"num_sentences": 2, "relation": "at least"}""", "first line\nsecond line", false)]
    [InlineData("length_constraints:number_paragraphs", """{"num_paragraphs": 2}""", "A\n***\nB", true)]
    [InlineData("length_constraints:number_paragraphs", """{"num_paragraphs": 2}""", "A *** B *** C", false)]
    [InlineData("length_constraints:number_paragraphs", """{"num_paragraphs": 2}""", "A\n***\n\n***\nB", false)]   // an empty middle paragraph fails
    [InlineData("length_constraints:number_words", """{"num_words": 5, "relation": "at least"}""", "one two three four five", true)]
    [InlineData("length_constraints:number_words", """{"num_words": 5, "relation": "at least"}""", "it's a fine test", true)]   // it, s, a, fine, test
    [InlineData("length_constraints:number_words", """{"num_words": 5, "relation": "at least"}""", "it's a test", false)]
    [InlineData("length_constraints:nth_paragraph_first_word", """{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Second"}""", "First para.\n\n\"Second, para.", true)]
    [InlineData("length_constraints:nth_paragraph_first_word", """{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "second"}""", "First.\n\nThird para.", false)]
    [InlineData("detectable_content:number_placeholders", """{"num_placeholders": 2}""", "[name] at [address]", true)]
    [InlineData("detectable_content:number_placeholders", """{"num_placeholders": 2}""", "[name] only", false)]
    [InlineData("detectable_content:postscript", """{"postscript_marker": "P.S."}""", "Hi.\np. s. bye", true)]
    [InlineData("detectable_content:postscript", """{"postscript_marker": "P.S."}""", "Hi. PS bye", false)]
    [InlineData("detectable_content:postscript", """{"postscript_marker": "P.P.S"}""", "Hi.\nP.P.S see", true)]
    [InlineData("detectable_format:number_bullet_lists", """{"num_bullets": 2}""", "**bold**\n* a\n- b", true)]
    [InlineData("detectable_format:number_bullet_lists", """{"num_bullets": 2}""", "* a\n- b\n* c", false)]
    [InlineData("detectable_format:constrained_response", "{}", "Well. My answer is no.", true)]
    [InlineData("detectable_format:constrained_response", "{}", "My answer is No", false)]
    [InlineData("detectable_format:number_highlighted_sections", """{"num_highlights": 2}""", "*a* and **b**", true)]
    [InlineData("detectable_format:number_highlighted_sections", """{"num_highlights": 1}""", "* * and ****", false)]
    [InlineData("detectable_format:multiple_sections", """{"section_spliter": "Section", "num_sections": 2}""", "Section 1\nfoo\nSection 2\nbar", true)]
    [InlineData("detectable_format:multiple_sections", """{"section_spliter": "SECTION", "num_sections": 2}""", "SECTION 1\nfoo\nSection 2\nbar", false)]
    [InlineData("detectable_format:json_format", "{}", "```json\n{\"a\": [1, 2]}\n```", true)]
    [InlineData("detectable_format:json_format", "{}", "{a: 1}", false)]
    [InlineData("detectable_format:title", "{}", "<<My Title>>\ntext", true)]
    [InlineData("detectable_format:title", "{}", "<<  >>\n<<\nx>>", false)]
    [InlineData("combination:two_responses", "{}", "First\n******\nSecond", true)]
    [InlineData("combination:two_responses", "{}", "Same\n******\nSame", false)]
    [InlineData("combination:repeat_prompt", """{"prompt_to_repeat": "Write a poem."}""", "  write a POEM. Roses are red", true)]
    [InlineData("combination:repeat_prompt", """{"prompt_to_repeat": "Write a poem."}""", "Sure! Write a poem.", false)]
    [InlineData("startend:end_checker", """{"end_phrase": "Any other questions?"}""", "Done. any other questions?\"", true)]
    [InlineData("startend:end_checker", """{"end_phrase": "Any other questions?"}""", "Any other questions? Bye", false)]
    [InlineData("change_case:capital_word_frequency", """{"capital_frequency": 2, "capital_relation": "at least"}""", "NASA and the USA", true)]
    [InlineData("change_case:capital_word_frequency", """{"capital_frequency": 2, "capital_relation": "at least"}""", "DON'T", true)]   // Treebank: DO, N'T
    [InlineData("change_case:capital_word_frequency", """{"capital_frequency": 2, "capital_relation": "at least"}""", "Nasa and the USA", false)]
    [InlineData("change_case:english_capital", "{}", "HELLO THERE, THIS IS THE END", true)]
    [InlineData("change_case:english_capital", "{}", "HELLO there", false)]
    [InlineData("change_case:english_lowercase", "{}", "this is the answer", true)]
    [InlineData("change_case:english_lowercase", "{}", "This is the answer", false)]
    [InlineData("change_case:english_lowercase", "{}", "das ist nicht gut und die katze", false)]   // lower case, but German
    [InlineData("punctuation:no_comma", "{}", "a b", true)]
    [InlineData("punctuation:no_comma", "{}", "a, b", false)]
    [InlineData("startend:quotation", "{}", " \"hi\" ", true)]
    [InlineData("startend:quotation", "{}", "\"", false)]
    public void Checker_FollowsTheReferenceDefinition(string id, string args, string response, bool expected) =>
        Assert.Equal(expected, IfEvalCheckers.Check(new IfEvalInstruction(id, JsonNode.Parse(args)!.AsObject()), response));

    [Fact]
    public void EveryRegisteredInstructionHasACheckedCase()
    {
        var tested = typeof(IfEvalTests).GetMethod(nameof(Checker_FollowsTheReferenceDefinition))!
            .GetCustomAttributes(typeof(InlineDataAttribute), false).Cast<InlineDataAttribute>()
            .Select(a => (string)a.GetData(null!).First()[0]).ToHashSet();
        Assert.Equal(25, IfEvalCheckers.Ids.Count);
        Assert.Equal([], IfEvalCheckers.Ids.Where(i => !tested.Contains(i)).ToList());
    }

    [Fact]
    public void Loose_AcceptsTheReferenceVariants_StrictDoesNot()
    {
        var quote = new IfEvalInstruction("startend:quotation", []);
        Assert.False(IfEvalCheckers.Strict(quote, "Sure, here it is:\n\"the answer\""));
        Assert.True(IfEvalCheckers.Loose(quote, "Sure, here it is:\n\"the answer\""));          // first line removed
        var end = new IfEvalInstruction("startend:end_checker", new JsonObject { ["end_phrase"] = "the end." });
        Assert.False(IfEvalCheckers.Strict(end, "That is **the end.**"));
        Assert.True(IfEvalCheckers.Loose(end, "That is **the end.**"));                        // '*' removed
        Assert.True(IfEvalCheckers.Loose(end, "That is the end.\nHope this helps!"));          // last line removed
        Assert.False(IfEvalCheckers.Loose(end, "That is the end.\nHope this helps!\nBye"));    // only first/last lines go
        var comma = new IfEvalInstruction("punctuation:no_comma", []);
        Assert.True(IfEvalCheckers.Check(comma, "   "));
        Assert.False(IfEvalCheckers.Strict(comma, "   "));                                     // a blank response follows nothing
        Assert.Equal(["a\nb\nc", "a\nb\nc", "b\nc", "a\nb", "b", "b\nc", "a\nb", "b"], IfEvalCheckers.LooseVariants("a\nb\nc"));
    }

    // Reply "Here is my reply.\n\"hello world\"". Row 1 [no_comma ✓, quotation ✗ (loose ✓: first line removed)];
    // row 2 [number_words < 3: 6 words ✗ (loose ✓: "hello world" is 2)]; row 3 [title ✗ ✗, existence "hello" ✓ ✓,
    // english_lowercase ✗ (loose ✓)]. Prompt strict 0/3; instruction strict (1 + 0 + 1) / 6; prompt loose 2/3;
    // instruction loose (2 + 1 + 2) / 6 (a mean of per-prompt shares would give 0.2778 and 0.7778 instead).
    const string Reply = "Here is my reply.\n\"hello world\"";

    static readonly (string Prompt, string[] Ids, string[] Kwargs)[] Rows =
    [
        ("Answer without commas, in quotes.", ["punctuation:no_comma", "startend:quotation"], ["{}", "{}"]),
        ("Answer in fewer than 3 words.", ["length_constraints:number_words"], ["""{"num_words": 3, "relation": "less than"}"""]),
        ("Give a title, say hello, all lower case.", ["detectable_format:title", "keywords:existence", "change_case:english_lowercase"], ["{}", """{"keywords": ["hello"]}""", "{}"]),
    ];

    static void AssertReport(CliRun run, UrlEvaluationTests.PatternServer server)
    {
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | ifeval | prompt_level_strict | OVERALL | 3 | 0.0000 |", run.Stdout);
        Assert.Contains("| m | ifeval | inst_level_strict | OVERALL | 3 | 0.3333 |", run.Stdout);
        Assert.Contains("| m | ifeval | prompt_level_loose | OVERALL | 3 | 0.6667 |", run.Stdout);
        Assert.Contains("| m | ifeval | inst_level_loose | OVERALL | 3 | 0.8333 |", run.Stdout);
        // The prompt goes out as the user's message, alone.
        var sent = server.Bodies.Select(b => (string)b["messages"]!.AsArray().Single()!["content"]!).Order().ToList();
        Assert.Equal(Rows.Select(r => r.Prompt).Order(), sent);
    }

    [Fact]
    public async Task IfEval_ByName_FromHuggingFace_ScoresPromptAndInstructionLevels()
    {
        await using var hub = new FakeHubServer();
        var jsonl = string.Concat(Rows.Select((r, i) => new JsonObject
        {
            ["key"] = 1000 + i,
            ["prompt"] = r.Prompt,
            ["instruction_id_list"] = new JsonArray(r.Ids.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["kwargs"] = new JsonArray(r.Kwargs.Select(k => JsonNode.Parse(k)).ToArray()),
        }.ToJsonString() + "\n"));
        hub.Add(new FakeRepo("google/IFEval", HubRepoType.Dataset, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes("ifeval"))),
            [new FakeFile("ifeval_input_data.jsonl", Encoding.UTF8.GetBytes(jsonl), false)]));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", hub.Url);
        using var hubCache = new EnvironmentVariableScope("HF_HUB_CACHE", Path.Combine(cache.Path, "hub"));
        using var datasets = new EnvironmentVariableScope("HF_DATASETS_CACHE", Path.Combine(cache.Path, "datasets"));
        using var msCache = new EnvironmentVariableScope("MODELSCOPE_CACHE", Path.Combine(cache.Path, "ms"));
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);
        using var server = new UrlEvaluationTests.PatternServer(Reply, failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--use_hf", "true", "--eval_dataset", "ifeval", "--eval_output_dir", output.Path);
        AssertReport(run, server);
        Assert.Contains(hub.Requests, r => r.Path.Contains("google/IFEval", StringComparison.Ordinal));
        var first = JsonNode.Parse(File.ReadLines(Path.Combine(output.Path, EvalRunner.PredictionsFile)).First())!;
        Assert.Equal("""[{"id":"punctuation:no_comma","strict":true,"loose":true},{"id":"startend:quotation","strict":false,"loose":true}]""", first["instructions"]!.ToJsonString());
    }

    // The hub's Parquet copy: kwargs is a list of structs holding every argument name, null where unused.
    public sealed class Kwargs
    {
        public long? num_words { get; set; }
        public string? relation { get; set; }
        public string[]? keywords { get; set; }
        public string? end_phrase { get; set; }
    }

    public sealed class ParquetRow
    {
        public long key { get; set; }
        public string prompt { get; set; } = "";
        public string[] instruction_id_list { get; set; } = [];
        public List<Kwargs> kwargs { get; set; } = [];
    }

    [Fact]
    public async Task IfEval_FromALocalParquetFolder_DropsTheNullArguments()
    {
        Kwargs Parse(string json)
        {
            var o = JsonNode.Parse(json)!.AsObject();
            return new Kwargs
            {
                num_words = o["num_words"]?.GetValue<long>(),
                relation = o["relation"]?.GetValue<string>(),
                keywords = o["keywords"]?.AsArray().Select(n => n!.GetValue<string>()).ToArray(),
            };
        }
        using var data = new TempDirectory();
        Directory.CreateDirectory(Path.Combine(data.Path, "data"));
        var rows = Rows.Select((r, i) => new ParquetRow { key = i, prompt = r.Prompt, instruction_id_list = r.Ids, kwargs = r.Kwargs.Select(Parse).ToList() }).ToArray();
        await using (var file = File.Create(Path.Combine(data.Path, "data", "train-00000-of-00001.parquet")))
            await ParquetSerializer.SerializeAsync(rows, file);
        using var output = new TempDirectory();
        using var server = new UrlEvaluationTests.PatternServer(Reply, failFirst: 0);
        var args = new JsonObject { ["ifeval"] = new JsonObject { ["local_path"] = data.Path } }.ToJsonString();
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "ifeval", "--dataset_args", args, "--eval_output_dir", output.Path);
        AssertReport(run, server);
    }

    [Fact]
    public void IfEval_UnknownInstruction_FailsAtLoadNamingTheLine()
    {
        using var data = new TempDirectory();
        File.WriteAllText(Path.Combine(data.Path, "input_data.jsonl"), """{"key": 1, "prompt": "p", "instruction_id_list": ["keywords:nonsense"], "kwargs": [{}]}""" + "\n");
        var e = Assert.Throws<OspreyException>(() => IfEval.Read("ifeval", data.Path));
        Assert.Contains("input_data.jsonl:1", e.Message, StringComparison.Ordinal);
        Assert.Contains("keywords:nonsense", e.Message, StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(data.Path, "input_data.jsonl"), """{"key": 1, "prompt": "p", "instruction_id_list": ["keywords:frequency"], "kwargs": [{"keyword": "(", "relation": "at least", "frequency": 1}]}""" + "\n");
        e = Assert.Throws<OspreyException>(() => IfEval.Read("ifeval", data.Path));
        Assert.Contains("input_data.jsonl:1", e.Message, StringComparison.Ordinal);
        Assert.Contains("regular expression", e.Message, StringComparison.Ordinal);
    }
}
