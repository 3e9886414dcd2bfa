using Osprey.Evaluation;

namespace Osprey.Tests.Evaluation;

/// <summary>
/// Answer extraction against the reply formats EvalScope's prompts document ("ANSWER: [LETTER]", "答案:[LETTER]",
/// "ANSWER: $ANSWER"), GSM8K's final-number rule, and BLEU/ROUGE against values computed by hand from their
/// definitions (Papineni et al. 2002; Lin 2004).
/// </summary>
public sealed class ScoringRuleTests
{
    static readonly string[] Abcd = ["A", "B", "C", "D"];

    [Theory]
    [InlineData("ANSWER: B", "B")]
    [InlineData("answer: c", "C")]
    [InlineData("Let me think. 6 times 7 is 42, option C.\nANSWER: C", "C")]
    [InlineData("答案:A", "A")]
    [InlineData("答案：D", "D")]
    [InlineData("The correct one is (B)... so ANSWER: (B)", "B")]
    [InlineData("B", "B")]
    [InlineData("(D)", "D")]
    [InlineData("C.", "C")]
    [InlineData("ANSWER: E", "")]          // not one of the options
    [InlineData("I do not know.", "")]
    [InlineData("Because of Avogadro", "")] // a capital inside prose is no answer
    public void Letter_ReadsTheDocumentedFormats(string reply, string expected) =>
        Assert.Equal(expected, AnswerExtraction.Letter(reply, Abcd));

    [Theory]
    [InlineData("3 boxes hold 3 * 12 = 36 pens.\nANSWER: 36", "36")]
    [InlineData("ANSWER: 1,000", "1000")]
    [InlineData("First 5, then 7.\nANSWER: $18.00", "18")]
    [InlineData("She pays 4 + 3 = 7 dollars in total.", "7")]   // no ANSWER line: the last number
    [InlineData("It drops to -3.5 degrees.", "-3.5")]
    [InlineData("no number here", "")]
    public void FinalNumber_FollowsTheGsm8kRule(string reply, string expected) =>
        Assert.Equal(expected, AnswerExtraction.FinalNumber(reply));

    [Fact]
    public void BleuAndRouge_MatchHandComputedValues()
    {
        // candidate: the cat sat on the mat; reference: the cat is on the mat (6 words each, brevity penalty 1).
        // 1-grams: the×2 cat on mat match → 5/6; 2-grams: "the cat", "on the", "the mat" → 3/5;
        // 3-grams: "on the mat" → 1/4; 4-grams: none of 3 → 0. ROUGE-L: LCS "the cat on the mat" = 5 → F 5/6.
        var s = TextMetrics.Score("The cat sat on the mat.", "the cat is on the mat");
        Assert.Equal(5.0 / 6, s["bleu-1"], 12);
        Assert.Equal(3.0 / 5, s["bleu-2"], 12);
        Assert.Equal(1.0 / 4, s["bleu-3"], 12);
        Assert.Equal(0, s["bleu-4"], 12);
        Assert.Equal(5.0 / 6, s["rouge-1-f"], 12);
        Assert.Equal(3.0 / 5, s["rouge-2-f"], 12);
        Assert.Equal(5.0 / 6, s["rouge-l-f"], 12);
    }

    [Fact]
    public void Bleu_AppliesTheBrevityPenalty_AndRougeCountsChineseCharacters()
    {
        // 2 candidate words against 6 reference words: BP = exp(1 - 6/2) = e^-2; both words match.
        Assert.Equal(Math.Exp(-2), TextMetrics.Score("the cat", "the cat is on the mat")["bleu-1"], 12);
        // 北京是首都 vs 首都是北京: every character matches (1-gram F 1), the longest common subsequence is 2 of 5.
        var zh = TextMetrics.Score("北京是首都", "首都是北京");
        Assert.Equal(1.0, zh["rouge-1-f"], 12);
        Assert.Equal(2.0 / 5, zh["rouge-l-f"], 12);
    }

    [Fact]
    public void Csv_ReadsQuotedFieldsAndNamesTheLineOfABadRecord()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "s_val.csv");
        File.WriteAllText(path, "id,question,A,B,answer\n1,\"Pick one, please\",\"say \"\"hi\"\"\",\"two\nlines\",A\n2,too,many,fields,here,B\n");
        var error = Assert.Throws<OspreyException>(() => CsvRecords.Read(path));
        Assert.Contains($"{path}:4:", error.Message);   // the second record starts on line 4 (the first spans two)
        File.WriteAllText(path, "id,question,A,B,answer\n1,\"Pick one, please\",\"say \"\"hi\"\"\",\"two\nlines\",A\n");
        var row = Assert.Single(CsvRecords.Read(path));
        Assert.Equal("Pick one, please", row.Fields["question"]);
        Assert.Equal("say \"hi\"", row.Fields["A"]);
        Assert.Equal("two\nlines", row.Fields["B"]);
    }

    [Fact]
    public void Options_RejectBadJsonAndUnknownSets_NamingTheFlag()
    {
        var bad = new EvalOptions { Datasets = ["general_mcq"], DatasetArgs = "{general_mcq: 1}" };
        Assert.Contains("--dataset_args is not valid JSON", Assert.Throws<OspreyException>(bad.Validate).Message);
        var gen = new EvalOptions { Datasets = ["general_mcq"], GenerationConfig = "{\"max_tokens\": \"many\"}" };
        Assert.Contains("'max_tokens'", Assert.Throws<OspreyException>(gen.Validate).Message);
        var unknown = new EvalOptions { Datasets = ["nosuchset"], DatasetArgs = "{\"nosuchset\": {\"local_path\": \".\"}}" };
        Assert.Contains("--eval_dataset nosuchset", Assert.Throws<OspreyException>(() => EvalSets.Load(unknown)).Message);
    }
}
