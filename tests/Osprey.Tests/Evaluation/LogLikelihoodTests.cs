using System.Text.Json.Nodes;
using Osprey.Evaluation;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using static TorchSharp.torch;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// Log-likelihood multiple choice against a direct computation written here with plain TorchSharp ops: the whole
/// sequence (context + option) run through the model alone, log_softmax of its logits, summed over the option's
/// tokens. The scorer under test shares the context through a KV cache and batches the options, so agreement
/// checks the cache, the copy of the prefix and the right padding.
/// </summary>
public sealed class LogLikelihoodTests
{
    static string Qwen2 => CliRun.Fixture("qwen2");

    public LogLikelihoodTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    static CausalLM Load() => CausalLM.Load(Qwen2, CPU, ScalarType.Float32);

    /// <summary>Sum of log p(token k | tokens before k) for k ≥ contextLength, from the full sequence's logits.</summary>
    static double Direct(CausalLM model, int[] sequence, int contextLength)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(sequence.Select(t => (long)t).ToArray(), [1, sequence.Length]);
        var logp = model.Forward(ids).to_type(ScalarType.Float32).log_softmax(-1)[0];
        double sum = 0;
        for (var k = contextLength; k < sequence.Length; k++) sum += logp[k - 1, sequence[k]].item<float>();
        return sum;
    }

    [Fact]
    public void OptionLogLikelihoods_EqualTheFullSequenceComputation()
    {
        using var model = Load();
        var tokenizer = Tokenizer.Load(Qwen2);
        // One-token letters (MMLU's " A") and longer options of different lengths (HellaSwag-style endings).
        foreach (var options in new[] { new[] { " A", " B", " C", " D" }, new[] { " the cat sat down", " a dog", " nothing at all happened here" } })
        {
            var context = "Question: which one fits best?\nAnswer:";
            var contextIds = tokenizer.EncodeIds(context, addSpecialTokens: false);
            var sequences = options.Select(o => tokenizer.EncodeIds(context + o, addSpecialTokens: false)).ToList();
            var scored = OptionScorer.LogLikelihoods(model, sequences, contextIds.Length);
            for (var i = 0; i < options.Length; i++)
                Assert.Equal(Direct(model, sequences[i], contextIds.Length), scored[i], 1e-4);
        }
    }

    [Fact]
    public void OptionLogLikelihoods_WhenOptionsDivergeInsideTheContext_StillEqualTheDirectSum()
    {
        // Token ids chosen by hand: the sequences agree on 3 tokens, the scored part starts at 5, so the cached
        // prefix is shorter than the context and context tokens 3..4 run (unscored) with each option.
        using var model = Load();
        var sequences = new[] { new[] { 11, 12, 13, 14, 15, 16, 17 }, new[] { 11, 12, 13, 40, 41, 42 }, new[] { 11, 12, 13, 14, 50, 51, 52, 53 } };
        var scored = OptionScorer.LogLikelihoods(model, sequences, 5);
        for (var i = 0; i < sequences.Length; i++)
            Assert.Equal(Direct(model, sequences[i], 5), scored[i], 1e-4);
    }

    [Fact]
    public async Task AWholeMcRun_PicksPerItemTheOptionOfHighestDirectLogLikelihood()
    {
        using var dir = new TempDirectory();
        var mcq = Path.Combine(TestPaths.RepoRoot, "examples", "eval", "mcq");
        var options = new EvalOptions
        {
            Model = new Osprey.Hub.ModelOptions { Model = Qwen2 },
            Datasets = ["general_mcq"],
            DatasetArgs = new JsonObject { ["general_mcq"] = new JsonObject { ["local_path"] = mcq, ["subset_list"] = new JsonArray("arith", "geo") } }.ToJsonString(),
            OutputDir = dir.Path,
        };
        var tokenizer = Tokenizer.Load(Qwen2);
        var report = await EvalRunner.RunAsync(options, () => new LocalEvalModel(Load(), tokenizer, null, null, new EvalGeneration(), 4, "qwen2"), TextWriter.Null, TextWriter.Null);

        // The protocol written out here from lm-evaluation-harness's MMLU format, not taken from the code under test.
        var items = new (string Subset, string Question, string[] Options, char Gold)[]
        {
            ("arith", "What is 3 + 5?", ["8", "7", "9", "15"], 'A'),
            ("arith", "What is 6 × 7?", ["36", "48", "42", "13"], 'C'),
            ("arith", "Which is even: 3, 7 or 12?", ["3", "7", "12, the even one", "none"], 'C'),
            ("arith", "What is 9 - 4?", ["13", "6", "4", "5"], 'D'),
            ("geo", "How many sides does a square have?", ["3", "4", "6"], 'B'),
            ("geo", "How many degrees are in a right angle?", ["45", "180", "90"], 'C'),
            ("geo", "Which shape has no corners?", ["circle", "square", "triangle"], 'A'),
        };
        using var model = Load();
        var records = File.ReadAllLines(Path.Combine(dir.Path, EvalRunner.PredictionsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(items.Length, records.Count);
        var correct = new Dictionary<string, int> { ["arith"] = 0, ["geo"] = 0 };
        foreach (var (item, record) in items.Zip(records))
        {
            var context = $"The following are multiple choice questions (with answers) about {item.Subset}.\n\n{item.Question}\n" +
                string.Concat(item.Options.Select((o, i) => $"{(char)('A' + i)}. {o}\n")) + "Answer:";
            var contextLength = tokenizer.EncodeIds(context, addSpecialTokens: false).Length;
            var lls = item.Options.Select((_, i) => Direct(model, tokenizer.EncodeIds(context + " " + (char)('A' + i), addSpecialTokens: false), contextLength)).ToList();
            var choice = (char)('A' + lls.IndexOf(lls.Max()));
            Assert.Equal(choice.ToString(), (string)record["extracted"]!);
            Assert.Equal(context, (string)record["prompt"]!);
            if (choice == item.Gold) correct[item.Subset]++;
        }
        Assert.Equal(correct["arith"] / 4.0, report.Rows.Single(r => r.Group == "arith" && r.Metric == "acc").Score, 12);
        Assert.Equal(correct["geo"] / 3.0, report.Rows.Single(r => r.Group == "geo" && r.Metric == "acc").Score, 12);
        Assert.Equal((correct["arith"] + correct["geo"]) / 7.0, report.Overall("general_mcq", "acc"), 12);
        Assert.True(File.Exists(Path.Combine(dir.Path, "report.png")));
        Assert.Contains("| general_mcq | acc | OVERALL | 7 |", File.ReadAllText(Path.Combine(dir.Path, "report.md")));
    }

    [Theory]
    // lm-evaluation-harness: acc takes the highest log-likelihood; acc_norm divides by the option's length in characters.
    [InlineData(new[] { -4.0, -6.0 }, new[] { " ab", " abcdef" }, 0, 1, 0)]  // -4/3 = -1.33 < -6/7 = -0.86: acc_norm picks option 1
    [InlineData(new[] { -4.0, -6.0 }, new[] { " ab", " abcdef" }, 1, 0, 1)]
    [InlineData(new[] { -1.0, -2.0, -0.5 }, new[] { " A", " B", " C" }, 2, 1, 1)]
    public void ScoreOptions_FollowsTheHarnessDefinitions(double[] lls, string[] continuations, int gold, int acc, int accNorm)
    {
        var (a, n, _) = EvalRunner.ScoreOptions(lls, continuations, gold);
        Assert.Equal((acc, accNorm), (a, n));
    }
}
