using System.Text.Json;
using Osprey.Gguf;
using Osprey.Tests.Tokenization;

namespace Osprey.Tests.Gguf;

/// <summary>
/// llama.cpp's own tokenizer (npm node-llama-cpp, pinned) reading the vocabulary Osprey's GGUF writer exports from
/// each of the five real tokenizers gives the ids transformers gives (tests/fixtures/tokenizers/expected, made by
/// transformers) on the tokenizer corpus. One vocabulary-only GGUF per tokenizer, all tokenized in one node process.
/// </summary>
public sealed class LlamaCppTokenizerTests
{
    // Where llama.cpp itself departs from transformers, whatever the GGUF says: it applies no NFC normalizer (Qwen's
    // tokenizer.json has one, so decomposed text differs), and it forces every token spelled "</s>" to a control
    // token that ends generation (llama-vocab.cpp's end-of-generation list), which Qwen's vocabulary has as plain text.
    private static readonly HashSet<(string, string)> s_llamaCppDepartures =
    [
        ("qwen3", "korean_decomposed_jamo"), ("qwen3", "decomposed_accents"),
        ("qwen3", "special_llama2"), ("qwen3", "special_tokens_spaced"),
    ];

    [Fact]
    public void LlamaCpp_TokenizesTheExportedVocabularies_AsTransformersDoes()
    {
        using var dir = new TempDirectory();
        var corpus = ParityFiles.Corpus;
        var jobs = new List<(string, string[])>();
        var expected = new List<(string Name, string[] Ids, int[][] Expected)>();
        foreach (var name in NpmTokenizers.Names)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ParityFiles.ExpectedDir, name + ".json")));
            var root = doc.RootElement;
            var texts = root.GetProperty("texts").EnumerateArray()
                .Where(t => corpus.ContainsKey(t.GetProperty("id").GetString()!) && !s_llamaCppDepartures.Contains((name, t.GetProperty("id").GetString()!)))
                .Select(t => (Id: t.GetProperty("id").GetString()!, Ids: t.GetProperty("ids_no_special").EnumerateArray().Select(x => x.GetInt32()).ToArray()))
                .ToArray();
            var file = dir.File(name + ".gguf");
            var w = new GgufWriter();
            // Vocabulary-only loads still read the architecture's hyper-parameters: a one-layer llama's.
            w.Add("general.architecture", "llama");
            w.Add("llama.context_length", 256u);
            w.Add("llama.embedding_length", 64u);
            w.Add("llama.block_count", 1u);
            w.Add("llama.feed_forward_length", 128u);
            w.Add("llama.attention.head_count", 4u);
            w.Add("llama.attention.head_count_kv", 4u);
            w.Add("llama.attention.layer_norm_rms_epsilon", 1e-6f);
            w.Add("llama.rope.dimension_count", 16u);
            GgufVocabulary.Add(w, NpmTokenizers.Folder(name), root.GetProperty("max_id_plus_one").GetInt32());
            w.Write(file);
            jobs.Add((file, texts.Select(t => corpus[t.Id]).ToArray()));
            expected.Add((name, texts.Select(t => t.Id).ToArray(), texts.Select(t => t.Ids).ToArray()));
        }

        var results = NodeLlamaCpp.Tokenize(jobs);

        var failures = new List<string>();
        for (int j = 0; j < expected.Count; j++)
            for (int i = 0; i < expected[j].Ids.Length; i++)
            {
                var (want, got) = (expected[j].Expected[i], results[j][i]);
                if (want.SequenceEqual(got)) continue;
                var at = 0;
                while (at < want.Length && at < got.Length && want[at] == got[at]) at++;
                failures.Add($"{expected[j].Name} {expected[j].Ids[i]}: from token {at}, llama.cpp [{string.Join(", ", got.Skip(at).Take(8))}], transformers [{string.Join(", ", want.Skip(at).Take(8))}]");
            }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
