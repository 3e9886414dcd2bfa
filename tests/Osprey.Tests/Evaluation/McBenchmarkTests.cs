using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Osprey.Evaluation;
using Osprey.Hub.Download;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Hub.Download;
using Osprey.Tests.Hub.ModelScope;
using Parquet.Serialization;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// ceval, cmmlu, arc, hellaswag, winogrande, truthful_qa and race by name, downloaded through the hub client from the
/// fake hubs on 127.0.0.1 in each benchmark's published Parquet column layout (rows made up here), and scored over a
/// server that always answers "ANSWER: A": the expected accuracies are the shares of gold A's counted by hand from the
/// rows and each benchmark's documented answer encoding (letters, 0- or 1-based numbers, ARC's labels, TruthfulQA's
/// labels after the rotation). Also the subject → category tables against the papers' published counts.
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class McBenchmarkTests
{
    public sealed class CevalRow { public long id { get; set; } public string question { get; set; } = ""; public string A { get; set; } = ""; public string B { get; set; } = ""; public string C { get; set; } = ""; public string D { get; set; } = ""; public string answer { get; set; } = ""; public string explanation { get; set; } = ""; }
    public sealed class CmmluRow { public string Question { get; set; } = ""; public string A { get; set; } = ""; public string B { get; set; } = ""; public string C { get; set; } = ""; public string D { get; set; } = ""; public string Answer { get; set; } = ""; }
    public sealed class CmmluScopeRow { public string question { get; set; } = ""; public string[] choices { get; set; } = []; public string answer { get; set; } = ""; public string category { get; set; } = ""; }
    public sealed class ArcChoices { public string[] text { get; set; } = []; public string[] label { get; set; } = []; }
    public sealed class ArcRow { public string id { get; set; } = ""; public string question { get; set; } = ""; public ArcChoices choices { get; set; } = new(); public string answerKey { get; set; } = ""; }
    public sealed class HellaRow { public string activity_label { get; set; } = ""; public string ctx_a { get; set; } = ""; public string ctx_b { get; set; } = ""; public string[] endings { get; set; } = []; public string label { get; set; } = ""; }
    public sealed class WinoRow { public string sentence { get; set; } = ""; public string option1 { get; set; } = ""; public string option2 { get; set; } = ""; public string answer { get; set; } = ""; }
    public sealed class Targets { public string[] choices { get; set; } = []; public int[] labels { get; set; } = []; }
    public sealed class TruthRow { public string question { get; set; } = ""; public Targets mc1_targets { get; set; } = new(); public Targets mc2_targets { get; set; } = new(); }
    public sealed class TruthGenRow { public string type { get; set; } = ""; public string best_answer { get; set; } = ""; }
    public sealed class BbhRow { public string input { get; set; } = ""; public string target { get; set; } = ""; }
    public sealed class RaceRow { public string example_id { get; set; } = ""; public string article { get; set; } = ""; public string answer { get; set; } = ""; public string question { get; set; } = ""; public string[] options { get; set; } = []; }

    static async Task<FakeFile> Parquet<T>(string path, T[] rows) => new(path, await Bytes(rows), true);

    static async Task<byte[]> Bytes<T>(T[] rows)
    {
        using var stream = new MemoryStream();
        await ParquetSerializer.SerializeAsync(rows, stream);
        return stream.ToArray();
    }

    static string Sha(string s) => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(s)));

    static CevalRow Ceval(string q, string answer) => new() { id = 1, question = q, A = "a", B = "b", C = "c", D = "d", answer = answer };
    static CmmluRow Cmmlu(string q, string answer) => new() { Question = q, A = "a", B = "b", C = "c", D = "d", Answer = answer };
    static RaceRow Race(string q, string answer) => new() { example_id = "x", article = "A short made-up story.", question = q, options = ["o1", "o2", "o3", "o4"], answer = answer };

    [Fact]
    public async Task SevenBenchmarks_ByName_FromHuggingFace_ScoreAsCountedByHand()
    {
        await using var hub = new FakeHubServer();
        hub.Add(new FakeRepo("ceval/ceval-exam", HubRepoType.Dataset, Sha("ceval"),
        [
            await Parquet("college_physics/val-00000-of-00001.parquet", new[] { Ceval("cp1", "A"), Ceval("cp2", "B") }),
            await Parquet("college_physics/dev-00000-of-00001.parquet", new[] { Ceval("cpdev", "C") }),
            await Parquet("law/val-00000-of-00001.parquet", new[] { Ceval("law1", "A") }),
        ]));
        hub.Add(new FakeRepo("haonan-li/cmmlu", HubRepoType.Dataset, Sha("cmmlu"),
        [
            await Parquet("agronomy/test-00000-of-00001.parquet", new[] { Cmmlu("ag1", "A"), Cmmlu("ag2", "C") }),
        ]));
        hub.Add(new FakeRepo("allenai/ai2_arc", HubRepoType.Dataset, Sha("arc"),
        [
            await Parquet("ARC-Easy/test-00000-of-00001.parquet", new[]
            {
                new ArcRow { id = "e1", question = "easy1", choices = new() { text = ["t1", "t2", "t3", "t4"], label = ["A", "B", "C", "D"] }, answerKey = "A" },
                new ArcRow { id = "e2", question = "easy2", choices = new() { text = ["t1", "t2", "t3", "t4"], label = ["A", "B", "C", "D"] }, answerKey = "B" },
            }),
            await Parquet("ARC-Challenge/test-00000-of-00001.parquet", new[]
            {
                new ArcRow { id = "c1", question = "hard1", choices = new() { text = ["t1", "t2", "t3", "t4"], label = ["1", "2", "3", "4"] }, answerKey = "1" },
                new ArcRow { id = "c2", question = "hard2", choices = new() { text = ["t1", "t2", "t3"], label = ["A", "B", "C"] }, answerKey = "C" },
            }),
        ]));
        hub.Add(new FakeRepo("Rowan/hellaswag", HubRepoType.Dataset, Sha("hellaswag"),
        [
            await Parquet("data/validation-00000-of-00001.parquet", new[]
            {
                new HellaRow { activity_label = "Cooking", ctx_a = "A man is cooking [title] soup", ctx_b = "he", endings = ["[header] stirs it.", "e2", "e3", "e4"], label = "0" },
                new HellaRow { activity_label = "Cooking", ctx_a = "A woman bakes", ctx_b = "then", endings = ["e1", "e2", "e3", "e4"], label = "2" },
            }),
        ]));
        hub.Add(new FakeRepo("allenai/winogrande", HubRepoType.Dataset, Sha("winogrande"),
        [
            await Parquet("winogrande_xl/validation-00000-of-00001.parquet", new[]
            {
                new WinoRow { sentence = "The cup fell off the table because _ was wobbly.", option1 = "the cup", option2 = "the table", answer = "2" },
                new WinoRow { sentence = "Ann thanked Beth because _ got help.", option1 = "Ann", option2 = "Beth", answer = "1" },
            }),
            await Parquet("winogrande_debiased/validation-00000-of-00001.parquet", new[] { new WinoRow { sentence = "not read", option1 = "x", option2 = "y", answer = "1" } }),
        ]));
        hub.Add(new FakeRepo("truthfulqa/truthful_qa", HubRepoType.Dataset, Sha("truthful"),
        [
            await Parquet("multiple_choice/validation-00000-of-00001.parquet", new[]
            {
                new TruthRow { question = "tq0", mc1_targets = new() { choices = ["true0", "f", "g", "h"], labels = [1, 0, 0, 0] } },
                new TruthRow { question = "tq1", mc1_targets = new() { choices = ["true1", "f1", "f2"], labels = [1, 0, 0] } },
                new TruthRow { question = "tq2", mc1_targets = new() { choices = ["true2", "f"], labels = [1, 0] } },
            }),
            await Parquet("generation/validation-00000-of-00001.parquet", new[] { new TruthGenRow { type = "Adversarial", best_answer = "not read" } }),
        ]));
        hub.Add(new FakeRepo("ehovy/race", HubRepoType.Dataset, Sha("race"),
        [
            await Parquet("high/test-00000-of-00001.parquet", new[] { Race("h1", "A"), Race("h2", "D") }),
            await Parquet("middle/test-00000-of-00001.parquet", new[] { Race("m1", "B") }),
        ]));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", hub.Url);
        using var hubCache = new EnvironmentVariableScope("HF_HUB_CACHE", Path.Combine(cache.Path, "hub"));
        using var datasets = new EnvironmentVariableScope("HF_DATASETS_CACHE", Path.Combine(cache.Path, "datasets"));
        using var msCache = new EnvironmentVariableScope("MODELSCOPE_CACHE", Path.Combine(cache.Path, "ms"));
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);
        using var server = new UrlEvaluationTests.PatternServer("ANSWER: A", failFirst: 0);

        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--use_hf", "true",
            "--eval_dataset", "ceval", "cmmlu", "arc", "hellaswag", "winogrande", "truthful_qa", "race", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        string[] expected =
        [
            // ceval: golds A,B in college_physics (STEM), A in law (Humanities).
            "| m | ceval | acc | college_physics | 2 | 0.5000 |", "| m | ceval | acc | law | 1 | 1.0000 |",
            "| m | ceval | acc | [Humanities] | 1 | 1.0000 |", "| m | ceval | acc | [STEM] | 2 | 0.5000 |", "| m | ceval | acc | OVERALL | 3 | 0.6667 |",
            "| m | cmmlu | acc | agronomy | 2 | 0.5000 |", "| m | cmmlu | acc | [Other] | 2 | 0.5000 |",
            // arc: A,B | label "1" of 1-4 → A, C of A-C.
            "| m | arc | acc | ARC-Easy | 2 | 0.5000 |", "| m | arc | acc | ARC-Challenge | 2 | 0.5000 |", "| m | arc | acc | OVERALL | 4 | 0.5000 |",
            // hellaswag: labels 0, 2 (0-based).
            "| m | hellaswag | acc | OVERALL | 2 | 0.5000 |",
            // winogrande: answers 2, 1 (1-based) from winogrande_xl only.
            "| m | winogrande | acc | winogrande_xl | 2 | 0.5000 |",
            // truthful_qa: true answer first, rotated left by i mod n: A (4 options, shift 0), C (3, shift 1), A (2, shift 0).
            "| m | truthful_qa | acc | multiple_choice | 3 | 0.6667 |",
            // race: A, D | B.
            "| m | race | acc | high | 2 | 0.5000 |", "| m | race | acc | middle | 1 | 0.0000 |", "| m | race | acc | OVERALL | 3 | 0.3333 |",
        ];
        foreach (var line in expected) Assert.True(run.Stdout.Contains(line, StringComparison.Ordinal), $"missing {line}\n{run.Stdout}");

        var records = File.ReadAllLines(Path.Combine(output.Path, "predictions.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        string Prompt(string dataset, string containing) => (string)records.Single(r => (string)r["dataset"]! == dataset && ((string)r["prompt"]!).Contains(containing, StringComparison.Ordinal))["prompt"]!;
        Assert.Contains("问题:cp1", Prompt("ceval", "cp1"), StringComparison.Ordinal);                        // Chinese template
        Assert.Contains("A man is cooking. soup He", Prompt("hellaswag", "cooking"), StringComparison.Ordinal); // [title] → ". ", ctx_b capitalised
        // The reference clean-up trims before it drops "[header]", so the ending keeps the space that followed it.
        Assert.Contains("A)  stirs it.", Prompt("hellaswag", "cooking"), StringComparison.Ordinal);
        Assert.Contains("A) f1\nB) f2\nC) true1", Prompt("truthful_qa", "tq1"), StringComparison.Ordinal);
        Assert.StartsWith("Q: What is human life expectancy", Prompt("truthful_qa", "tq0").Split("\n\n", 2)[1], StringComparison.Ordinal);
        Assert.Contains("Article:\nA short made-up story.\nQuestion:\nh1", Prompt("race", "h1"), StringComparison.Ordinal);
        Assert.Contains("A) the cup\nB) the table", Prompt("winogrande", "wobbly"), StringComparison.Ordinal);
        Assert.DoesNotContain(records, r => ((string)r["prompt"]!).Contains("not read", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Cmmlu_FromModelScope_ReadsEvalScopesSingleTableLayout_SubjectsFromTheCategoryColumn()
    {
        await using var ms = new ModelScopeTestServer();
        var rows = new[]
        {
            new CmmluScopeRow { question = "q1", choices = ["(A) 甲", "(B) 乙", "(C) 丙", "(D) 丁"], answer = "(A)", category = "arts" },
            new CmmluScopeRow { question = "q2", choices = ["(A) 甲", "(B) 乙", "(C) 丙", "(D) 丁"], answer = "(B)", category = "arts" },
            new CmmluScopeRow { question = "q3", choices = ["(A) 甲", "(B) 乙", "(C) 丙", "(D) 丁"], answer = "(A)", category = "genetics" },
        };
        ms.Add(new MsRepo("evalscope/cmmlu", HubRepoType.Dataset).With("master", ("test-00000-of-00001.parquet", await Bytes(rows))));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var domain = new EnvironmentVariableScope("MODELSCOPE_DOMAIN", ms.Url);
        using var msCache = new EnvironmentVariableScope("MODELSCOPE_CACHE", cache.Path);
        using var useHf = new EnvironmentVariableScope("USE_HF", null);
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);
        using var server = new UrlEvaluationTests.PatternServer("答案:A", failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--eval_dataset", "cmmlu", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | cmmlu | acc | arts | 2 | 0.5000 |", run.Stdout);
        Assert.Contains("| m | cmmlu | acc | genetics | 1 | 1.0000 |", run.Stdout);
        Assert.Contains("| m | cmmlu | acc | [Humanities] | 2 | 0.5000 |", run.Stdout);
        Assert.Contains("| m | cmmlu | acc | [STEM] | 1 | 1.0000 |", run.Stdout);
        Assert.Contains("A) 甲\nB) 乙", File.ReadAllText(Path.Combine(output.Path, "predictions.jsonl")).Replace("\\n", "\n"), StringComparison.Ordinal);
        Assert.Contains(ms.Requests, r => r.Path.Contains("evalscope/cmmlu", StringComparison.Ordinal));
    }

    [Fact]
    public void CategoryTables_HaveThePapersSubjectCounts()
    {
        // MMLU (Hendrycks et al. 2021): 57 subjects, 18 STEM, 13 humanities, 12 social sciences, 14 other.
        // C-Eval (Huang et al. 2023): 52 subjects, 20 STEM, 10 Social Science, 11 Humanities, 11 Other.
        // CMMLU (Li et al. 2023): 67 subjects, 15 of them China specific.
        static Dictionary<string, int> Count(IReadOnlyDictionary<string, string> t) => t.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(57, BenchmarkCategories.Mmlu.Count);
        Assert.Equal(new Dictionary<string, int> { ["STEM"] = 18, ["humanities"] = 13, ["social sciences"] = 12, ["other (business, health, misc.)"] = 14 }, Count(BenchmarkCategories.Mmlu));
        Assert.Equal(52, BenchmarkCategories.CEval.Count);
        Assert.Equal(new Dictionary<string, int> { ["STEM"] = 20, ["Social Science"] = 10, ["Humanities"] = 11, ["Other"] = 11 }, Count(BenchmarkCategories.CEval));
        Assert.Equal(67, BenchmarkCategories.Cmmlu.Count);
        Assert.Equal(15, Count(BenchmarkCategories.Cmmlu)["China specific"]);
        Assert.Equal("STEM", BenchmarkCategories.Of("mmlu", "abstract_algebra"));
        Assert.Equal("humanities", BenchmarkCategories.Of("mmlu", "world_religions"));
        Assert.Equal("made_up", BenchmarkCategories.Of("mmlu", "made_up"));
    }

    [Theory]
    [InlineData("Step 1 ...\nSo the answer is (B).", "date_understanding", "B")]
    [InlineData("So the answer is A", "snarks", "A")]
    [InlineData("Thinking.\nSo the answer is (C). Then more\ntext", "hyperbaton", "C")]
    [InlineData("So the answer is **valid**.", "formal_fallacies", "valid")]
    [InlineData("So the answer is 3. No wait. So the answer is 24.", "multistep_arithmetic_two", "24")]   // the last one
    [InlineData("No marker here.", "web_of_lies", "No marker here")]
    public void Bbh_ExtractsTheAnswerAfterTheLastMarker(string reply, string task, string expected) =>
        Assert.Equal(expected, Bbh.Extract(reply, task));

    [Fact]
    public async Task Bbh_ByName_FromHuggingFace_ExactMatchOfTheTargetWithoutParentheses()
    {
        await using var hub = new FakeHubServer();
        hub.Add(new FakeRepo("lukaemon/bbh", HubRepoType.Dataset, Sha("bbh"),
        [
            await Parquet("boolean_expressions/test-00000-of-00001.parquet", new[] { new BbhRow { input = "not True is", target = "False" }, new BbhRow { input = "True or False is", target = "True" } }),
            await Parquet("date_understanding/test-00000-of-00001.parquet", new[] { new BbhRow { input = "Which date? Options: (A) x (B) y", target = "(A)" }, new BbhRow { input = "Which day? Options: (A) x (B) y", target = "(B)" } }),
        ]));
        using var cache = new TempDirectory();
        using var output = new TempDirectory();
        using var endpoint = new EnvironmentVariableScope("HF_ENDPOINT", hub.Url);
        using var hubCache = new EnvironmentVariableScope("HF_HUB_CACHE", Path.Combine(cache.Path, "hub"));
        using var datasets = new EnvironmentVariableScope("HF_DATASETS_CACHE", Path.Combine(cache.Path, "datasets"));
        using var offline = new EnvironmentVariableScope("HF_HUB_OFFLINE", null);
        // "False" matches the first boolean target only; as a multiple-choice answer it has no letter, so both dates miss.
        using var server = new UrlEvaluationTests.PatternServer("Reasoning.\nSo the answer is False.", failFirst: 0);
        var run = CliRun.Of("eval", "--eval_url", server.Url, "--model", "m", "--use_hf", "true", "--eval_dataset", "bbh", "--eval_output_dir", output.Path);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("| m | bbh | acc | boolean_expressions | 2 | 0.5000 |", run.Stdout);
        Assert.Contains("| m | bbh | acc | date_understanding | 2 | 0.0000 |", run.Stdout);
        Assert.Contains("| m | bbh | acc | [free_form] | 2 | 0.5000 |", run.Stdout);
        Assert.Contains("| m | bbh | acc | OVERALL | 4 | 0.2500 |", run.Stdout);
        var prompts = File.ReadAllLines(Path.Combine(output.Path, "predictions.jsonl")).Select(l => (string)JsonNode.Parse(l)!["prompt"]!).ToList();
        Assert.Contains(prompts, p => p.StartsWith("Q: not True is\nA: Let's think step by step.", StringComparison.Ordinal));
    }
}
