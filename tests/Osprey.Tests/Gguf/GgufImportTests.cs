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
