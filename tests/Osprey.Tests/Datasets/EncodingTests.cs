using Osprey.Datasets;
using Osprey.Templates;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;

namespace Osprey.Tests.Datasets;

/// <summary><see cref="DatasetEncoder"/> on hand-built rows with the real Qwen3 tokenizer.</summary>
public sealed class EncodingTests
{
    private const int ImEnd = 151645; // <|im_end|>

    private static readonly Lazy<Tokenizer> Qwen3 = new(() => Tokenizer.Load(NpmTokenizers.Folder("qwen3")));

    private static Dictionary<string, object?> Msg(string role, string content) => new() { ["role"] = role, ["content"] = content };

    internal static DatasetRow Chat(int line, string user, string assistant, string source = "data.jsonl") =>
        new(source, line, DatasetFormat.Messages, new Conversation([Msg("user", user), Msg("assistant", assistant)]), null);

    internal static DatasetRow Text(int line, string text, string source = "corpus.txt") => new(source, line, DatasetFormat.Text, null, text);

    internal static List<DatasetRow> ManyRows(int n) =>
        Enumerable.Range(1, n).Select(i => i % 5 == 0
            ? Text(i, $"Document {i}: " + string.Concat(Enumerable.Repeat("lorem ipsum ", i % 17)))
            : Chat(i, $"Question {i}: what is {i} squared?", $"{i} squared is {i * i}." + new string('!', i % 13))).ToList();

    private static string LabelledText(EncodedSample s) => Qwen3.Value.Decode(s.Labels.Where(l => l != EncodedSample.IgnoreIndex).ToArray());

    [Fact]
    public void Chat_rows_carry_loss_only_on_the_assistant_reply()
    {
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3" });
        var sample = encoder.Encode(Chat(1, "What is 2+2?", "It is 4."))!;
        Assert.Equal(sample.Length, sample.Labels.Length);
        // The named qwen3 template (as ms-swift's) labels the empty think block the model has to generate.
        Assert.Equal("<think>\n\n</think>\n\nIt is 4.<|im_end|>", LabelledText(sample));
        Assert.Contains("What is 2+2?", Qwen3.Value.Decode(sample.InputIds));
        // Every labelled token is the input token at the same place (the trainer shifts).
        for (var i = 0; i < sample.Length; i++)
            if (sample.Labels[i] != EncodedSample.IgnoreIndex) Assert.Equal(sample.InputIds[i], sample.Labels[i]);
        Assert.Equal(ImEnd, sample.Labels.Last(l => l != EncodedSample.IgnoreIndex));
    }

    [Fact]
    public void Model_jinja_template_is_the_default_and_system_and_loss_scale_apply()
    {
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { System = "Be brief.", LossScale = LossScale.All });
        var sample = encoder.Encode(Chat(1, "Hi", "Hello!"))!;
        var text = Qwen3.Value.Decode(sample.InputIds);
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>", text);
        Assert.Equal(sample.Length - 1, sample.LabelledTokenCount); // all but the first token
    }

    [Fact]
    public void Text_rows_are_encoded_as_pretraining_with_the_tokenizers_eos_and_loss_everywhere_but_the_first_token()
    {
        var encoder = new DatasetEncoder(Qwen3.Value);
        var sample = encoder.Encode(Text(3, "The quick brown fox."))!;
        var plain = Qwen3.Value.EncodeIds("The quick brown fox.", addSpecialTokens: true);
        // ms-swift pt: the generation template's suffix is the tokenizer's eos_token_id (<|im_end|> for Qwen3's tokenizer).
        Assert.Equal(ImEnd, Qwen3.Value.EosToken!.Id);
        Assert.Equal([.. plain, ImEnd], sample.InputIds);
        Assert.Equal(EncodedSample.IgnoreIndex, sample.Labels[0]);
        Assert.Equal(sample.InputIds[1..], sample.Labels[1..]);
    }

    [Fact]
    public void Delete_drops_long_rows_and_reports_each_with_file_and_line()
    {
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 20 });
        var stats = new EncodingStats();
        var rows = new[] { Chat(1, "Hi", "Yo"), Chat(7, "Tell a long story", string.Join(" ", Enumerable.Repeat("once upon a time", 20)), "stories.jsonl"), Text(9, "short") };
        var samples = encoder.EncodeAll(rows, stats);
        Assert.Equal(2, samples.Count);
        var deleted = Assert.Single(stats.Deleted);
        Assert.StartsWith("stories.jsonl line 7 (", deleted);
        var log = new StringWriter();
        stats.Report(log, 20);
        Assert.Contains("warning: stories.jsonl line 7", log.ToString());
        Assert.Contains("longer than --max_length 20; deleted", log.ToString());
        Assert.Contains("1 deleted", log.ToString());
    }

    [Fact]
    public void Deleted_rows_are_reported_in_file_and_line_order_with_a_count_beyond_the_first_ten()
    {
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 12, Threads = 2 });
        var stats = new EncodingStats();
        var rows = Enumerable.Range(1, 25).Select(i => Chat(i, "Say a long thing", "word " + string.Join(" ", Enumerable.Repeat("again", 10)))).ToList();
        Assert.Empty(encoder.EncodeAll(rows, stats));
        Assert.Equal(Enumerable.Range(1, 25).Select(i => $"data.jsonl line {i} ("), stats.Deleted.Select(d => d[..(d.IndexOf('(') + 1)]));
        var log = new StringWriter();
        stats.Report(log, 12);
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("warning: data.jsonl line 1 (", lines[0]);
        Assert.StartsWith("warning: data.jsonl line 10 (", lines[9]);
        Assert.Equal("warning: ... and 15 more rows deleted as longer than --max_length 12.", lines[10]);
        Assert.Contains("25 deleted", lines[11]);
    }

    [Fact]
    public void Left_and_right_truncation_keep_the_last_or_first_tokens()
    {
        var row = Chat(1, "Count", string.Join(" ", Enumerable.Range(1, 40)));
        var full = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3" }).Encode(row)!;
        var left = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 16, Truncation = TruncationStrategy.Left }).Encode(row)!;
        var right = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 16, Truncation = TruncationStrategy.Right }).Encode(row)!;
        Assert.True(full.Length > 16);
        Assert.Equal(full.InputIds[^16..], left.InputIds);
        Assert.Equal(full.Labels[^16..], left.Labels);
        Assert.Equal(full.InputIds[..16], right.InputIds);
        Assert.Equal(full.Labels[..16], right.Labels);
        var stats = new EncodingStats();
        new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 16, Truncation = TruncationStrategy.Left }).EncodeAll([row], stats);
        Assert.Equal(1, stats.Truncated);
        Assert.Empty(stats.Deleted);
    }

    [Fact]
    public void Parallel_encoding_preserves_row_order_and_equals_one_thread()
    {
        var rows = ManyRows(1500);
        var one = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", Threads = 1 }).EncodeAll(rows);
        var many = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", Threads = 4 }).EncodeAll(rows);
        Assert.Equal(rows.Count, many.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            Assert.Equal(one[i].InputIds, many[i].InputIds);
            Assert.Equal(one[i].Labels, many[i].Labels);
        }
        Assert.Contains("Question 7:", Qwen3.Value.Decode(many[6].InputIds));
    }

    [Fact]
    public void Streaming_encoding_is_ordered_bounded_and_equal_to_eager()
    {
        var rows = ManyRows(700);
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", Threads = 2, MaxLength = 40 });
        var eagerStats = new EncodingStats();
        var eager = encoder.EncodeAll(rows, eagerStats);
        var pulled = 0;
        IEnumerable<DatasetRow> Source()
        {
            foreach (var r in rows)
            {
                pulled++;
                yield return r;
            }
        }
        var streamStats = new EncodingStats();
        using var e = encoder.EncodeStreaming(Source(), streamStats, batchSize: 64).GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.True(pulled <= 64, $"pulled {pulled} rows before the first sample");
        var streamed = new List<EncodedSample> { e.Current };
        while (e.MoveNext()) streamed.Add(e.Current);
        Assert.Equal(eager.Count, streamed.Count);
        for (var i = 0; i < eager.Count; i++) Assert.Equal(eager[i].InputIds, streamed[i].InputIds);
        Assert.Equal(eagerStats.Deleted.Order(), streamStats.Deleted.Order());
    }

    [Fact]
    public void Lazy_view_equals_eager_and_encodes_on_access_with_a_cache()
    {
        var rows = ManyRows(50);
        var encoder = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3" });
        var eager = encoder.EncodeAll(rows);
        var lazy = encoder.Lazy(rows, cacheSize: 4);
        Assert.Equal(rows.Count, lazy.Count);
        Assert.Equal(0, lazy.Encodings);
        Assert.Equal(eager[10].InputIds, lazy[10]!.InputIds);
        Assert.Equal(eager[10].Labels, lazy[10]!.Labels);
        Assert.Equal(1, lazy.Encodings); // second read came from the cache
        var all = lazy.ToList();
        for (var i = 0; i < rows.Count; i++) Assert.Equal(eager[i].InputIds, all[i]!.InputIds);
    }

    [Fact]
    public void Strict_errors_name_the_row_and_non_strict_skips_and_counts()
    {
        var bad = new DatasetRow("bad.jsonl", 4, DatasetFormat.Messages, new Conversation([Msg("user", "only a question")]), null);
        var strict = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3" });
        var e = Assert.Throws<OspreyException>(() => strict.EncodeAll([Chat(1, "a", "b"), bad]));
        Assert.StartsWith("bad.jsonl line 4: ", e.Message);
        var stats = new EncodingStats();
        var lenient = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", Strict = false });
        Assert.Single(lenient.EncodeAll([Chat(1, "a", "b"), bad], stats));
        Assert.StartsWith("bad.jsonl line 4: ", Assert.Single(stats.Skipped));
    }

    [Fact]
    public void Packing_fills_rows_up_to_max_length_with_restarting_position_ids()
    {
        var rows = ManyRows(60);
        var plain = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 128, Truncation = TruncationStrategy.Right }).EncodeAll(rows);
        var packed = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 128, Truncation = TruncationStrategy.Right, Packing = true }).EncodeAll(rows);
        Assert.True(packed.Count < plain.Count);
        Assert.All(packed, p => Assert.True(p.Length <= 128));
        Assert.Equal(plain.Sum(s => s.Length), packed.Sum(p => p.Length));
        Assert.Equal(plain.Count, packed.Sum(p => p.PositionIds!.Count(x => x == 0)));
        // Every sample appears once (first-fit-decreasing reorders samples across packs).
        static IEnumerable<string> Segments(EncodedSample p)
        {
            var start = 0;
            for (var i = 1; i <= p.Length; i++)
                if (i == p.Length || p.PositionIds![i] == 0)
                {
                    yield return string.Join(",", p.InputIds[start..i]);
                    start = i;
                }
        }
        Assert.Equal(plain.Select(s => string.Join(",", s.InputIds)).Order(), packed.SelectMany(Segments).Order());
        Assert.All(packed, p => Assert.Equal(EncodedSample.IgnoreIndex, p.Labels[0]));
        var streamed = new DatasetEncoder(Qwen3.Value, new EncodingOptions { Template = "qwen3", MaxLength = 128, Truncation = TruncationStrategy.Right, Packing = true })
            .EncodeStreaming(rows, batchSize: 16).ToList();
        Assert.Equal(plain.Select(s => string.Join(",", s.InputIds)).Order(), streamed.SelectMany(Segments).Order());
        Assert.All(streamed, p => Assert.True(p.Length <= 128));
        Assert.Throws<OspreyException>(() => new DatasetEncoder(Qwen3.Value, new EncodingOptions { Packing = true }));
    }
}
