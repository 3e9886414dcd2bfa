using System.Text.Json;
using Osprey.Gguf;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;

namespace Osprey.Tests.Gguf;

/// <summary>
/// <c>--model file.gguf</c>: a GGUF file read back into a model folder generates, tokenizes and renders its chat
/// template as transformers did for the source model (the fixture's infer_golden.json, made by transformers).
/// </summary>
public sealed class GgufImportTests
{
    private static JsonElement Case(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(CliRun.Fixture(family), "infer_golden.json")));
        return doc.RootElement.GetProperty("cases")[0].Clone();
    }

    private static int[] Ids(JsonElement c, string name) => c.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Theory]
    [InlineData("qwen2", "q8_0")]
    [InlineData("llama", "f32")]
    [InlineData("llama3", "f32")] // Llama 3.1 rope scaling: rope_freqs.weight read back into rope_scaling
    [InlineData("phi3", "f32")]   // fused qkv_proj / gate_up_proj, partial rotary
    public void GgufReadBack_GeneratesTokenizesAndTemplatesAsTransformers(string family, string quant)
    {
        using var dir = new TempDirectory();
        var export = CliRun.Of("export", "--model", CliRun.Fixture(family), "--to_gguf", "true", "--gguf_quant", quant, "--output_dir", dir.Path);
        Assert.True(export.ExitCode == 0, export.ToString());
        var folder = dir.File("model");
        GgufImport.ToFolder(dir.File($"{family}-{quant}.gguf"), folder);
        var c = Case(family);

        var tokenizer = Tokenizer.Load(folder);
        Assert.Equal(Ids(c, "prompt_ids"), tokenizer.EncodeIds(c.GetProperty("prompt").GetString()!, addSpecialTokens: false));
        var messages = c.GetProperty("messages").EnumerateArray()
            .Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.GetProperty("role").GetString(), ["content"] = m.GetProperty("content").GetString() })
            .ToList();
        Assert.Equal(c.GetProperty("prompt").GetString(), tokenizer.ApplyChatTemplate(messages, new ChatTemplateOptions { AddGenerationPrompt = true }));

        var infer = CliRun.Of("infer", "--model", folder, "--device", "cpu", "--input_ids", string.Join(' ', Ids(c, "prompt_ids")), "--max_new_tokens", "16");
        Assert.True(infer.ExitCode == 0, infer.ToString());
        var generated = infer.StdoutLines[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).TakeWhile(t => !t.StartsWith('(')).Select(int.Parse).ToArray();
        var expected = Ids(c, "new_ids");
        // f32 round-trips the weights exactly, so all 16 tokens match; q8_0 changes the weights, so only the first.
        if (quant == "f32") Assert.Equal(expected, generated);
        else Assert.Equal(expected[0], generated[0]);
    }

    /// <summary>
    /// gemma2/gemma3 read back: the Gemma variants llama.cpp runs (see LlamaCppGgufTests) exported as f32 and read back
    /// generate what Osprey generates from the variant folders (norms 1 + w back to w, soft-capping, window, pattern).
    /// </summary>
    [Fact]
    public void GemmaGgufReadBack_GeneratesAsTheSourceModel()
    {
        using var dir = new TempDirectory();
        var prompt = string.Join(' ', Ids(Case("gemma2"), "prompt_ids"));
        foreach (var (family, layers) in new[] { ("gemma2", 2), ("gemma3_text", 6) })
        {
            var variant = LlamaCppGgufTests.GemmaVariant(CliRun.Fixture(family), dir.File(family + "-variant"), layers);
            var folder = dir.File(family + "-back");
            GgufImport.ToFolder(LlamaCppGgufTests.Export(variant, "f32", dir.Path), folder);
            var source = CliRun.Of("infer", "--model", variant, "--device", "cpu", "--input_ids", prompt, "--max_new_tokens", "16");
            var back = CliRun.Of("infer", "--model", folder, "--device", "cpu", "--input_ids", prompt, "--max_new_tokens", "16");
            Assert.True(source.ExitCode == 0 && back.ExitCode == 0, source + "\n" + back);
            Assert.Equal(source.StdoutLines[^1], back.StdoutLines[^1]);
        }
    }

    /// <summary>
    /// tokenizer.ggml.add_space_prefix = false: Gemma 3's vocabulary, exported and read back into tokenizer.json,
    /// tokenizes the corpus to the ids transformers gives (tests/fixtures/tokenizers/expected). (Llama 2's is left out:
    /// its Prepend normalizer prefixes "▁" where the read-back Metaspace does not, and the file cannot tell them apart.)
    /// </summary>
    [Theory]
    [InlineData("gemma3", false)]
    public void SentencePieceVocabulary_ReadBack_TokenizesAsTransformers(string name, bool addSpacePrefix)
    {
        using var dir = new TempDirectory();
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Osprey.Tests.Tokenization.ParityFiles.ExpectedDir, name + ".json")));
        var root = doc.RootElement;
        var w = new GgufWriter().Add("general.architecture", "llama");
        GgufVocabulary.Add(w, Osprey.Tests.Tokenization.NpmTokenizers.Folder(name), root.GetProperty("max_id_plus_one").GetInt32());
        w.Write(dir.File("v.gguf"));
        var file = GgufFile.Open(dir.File("v.gguf"));
        Assert.Equal(addSpacePrefix, file.Get("tokenizer.ggml.add_space_prefix"));
        GgufTokenizerJson.Write(file, dir.Path);
        var tokenizer = Tokenizer.Load(dir.Path);
        var corpus = Osprey.Tests.Tokenization.ParityFiles.Corpus;
        var failures = new List<string>();
        foreach (var t in root.GetProperty("texts").EnumerateArray())
        {
            var id = t.GetProperty("id").GetString()!;
            if (!corpus.TryGetValue(id, out var text)) continue;
            var want = t.GetProperty("ids_no_special").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var got = tokenizer.EncodeIds(text, addSpecialTokens: false);
            if (!want.SequenceEqual(got)) failures.Add($"{id}: [{string.Join(", ", got.Take(12))}] vs transformers [{string.Join(", ", want.Take(12))}]");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void ModelFlag_TakesAGgufFile()
    {
        using var dir = new TempDirectory();
        Assert.Equal(0, CliRun.Of("export", "--model", CliRun.Fixture("llama"), "--to_gguf", "true", "--gguf_quant", "f32", "--output_dir", dir.Path).ExitCode);
        var c = Case("llama");
        var run = CliRun.Of("infer", "--model", dir.File("llama-f32.gguf"), "--device", "cpu", "--input_ids", string.Join(' ', Ids(c, "prompt_ids")), "--max_new_tokens", "4");
        try
        {
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.StartsWith("[0] " + string.Join(' ', Ids(c, "new_ids").Take(4)), run.StdoutLines[^1]);
        }
        finally
        {
            // The converted folder lives in the user's cache; with the file unchanged, CachedFolder names it without converting.
            var converted = GgufImport.CachedFolder(dir.File("llama-f32.gguf"));
            if (Directory.Exists(converted)) Directory.Delete(converted, recursive: true);
        }
    }
}
