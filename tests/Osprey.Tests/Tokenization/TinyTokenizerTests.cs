using System.Security.Cryptography;
using System.Text.Json;
using Osprey.Tokenization;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// The tiny char-level BPE tokenizer that sits next to every tiny parity model (tests/fixtures/parity/&lt;family&gt;),
/// written with infer_golden.json by tools/make_infer_fixtures.py: exactly the models' 256 ids, special tokens where
/// generation_config.json puts them, and encodings, decodings and chat prompts as transformers made them.
/// </summary>
public sealed class TinyTokenizerTests
{
    internal static readonly string[] Families = ["llama", "llama3", "mistral", "phi3", "qwen2", "qwen3", "gemma2", "gemma3_text"];

    private static readonly Lazy<Tokenizer> s_llama = new(() => Load("llama"));

    internal static string Folder(string family) => Path.Combine(TestPaths.Fixtures, "parity", family);

    private static string MissingFixture(string path) =>
        $"MISSING FIXTURE {path}: the tiny tokenizer and its transformers goldens have not been generated yet. Run on the GPU machine: " +
        "python3 tools/make_infer_fixtures.py --parity tests/fixtures/parity, then commit tests/fixtures/parity/*/ " +
        "(tokenizer files and infer_golden.json; the model files stay unchanged).";

    /// <summary>infer_golden.json of a family; fails (never skips) when it is missing.</summary>
    internal static JsonElement Golden(string family)
    {
        var path = Path.Combine(Folder(family), "infer_golden.json");
        if (!File.Exists(path)) Assert.Fail(MissingFixture(path));
        return JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
    }

    private static Tokenizer Load(string family)
    {
        var path = Path.Combine(Folder(family), "tokenizer.json");
        if (!File.Exists(path)) Assert.Fail(MissingFixture(path));
        return Tokenizer.Load(Folder(family));
    }

    private static JsonElement ReadJson(string family, string file) =>
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder(family), file))).RootElement;

    public static TheoryData<string> FamilyNames()
    {
        var data = new TheoryData<string>();
        foreach (var f in Families) data.Add(f);
        return data;
    }

    /// <summary>Indices of llama's tokenizer_checks; just 0 while the file is missing, so the test fails and says why.</summary>
    public static TheoryData<int> CheckIndices()
    {
        var data = new TheoryData<int>();
        var path = Path.Combine(Folder("llama"), "infer_golden.json");
        var count = File.Exists(path)
            ? JsonDocument.Parse(File.ReadAllBytes(path)).RootElement.GetProperty("tokenizer_checks").GetArrayLength()
            : 1;
        for (var i = 0; i < count; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void It_has_exactly_the_models_256_ids()
    {
        var tok = s_llama.Value;
        var vocab = ReadJson("llama", "config.json").GetProperty("vocab_size").GetInt32();

        Assert.Equal(256, vocab);
        Assert.Equal(vocab, tok.VocabSize);
        Assert.Equal(vocab, Golden("llama").GetProperty("vocab_size").GetInt32());
        for (var id = 0; id < vocab; id++)
            Assert.True(tok.IdToToken(id) is not null, $"id {id} has no token");
        Assert.Null(tok.IdToToken(vocab));
    }

    [Fact]
    public void Special_tokens_sit_where_generation_config_expects_them()
    {
        var tok = s_llama.Value;
        var gen = ReadJson("llama", "generation_config.json");

        Assert.Equal(("<|endoftext|>", gen.GetProperty("pad_token_id").GetInt32()), (tok.PadToken?.Content, tok.PadToken?.Id ?? -1));
        Assert.Equal(("<|im_start|>", gen.GetProperty("bos_token_id").GetInt32()), (tok.BosToken?.Content, tok.BosToken?.Id ?? -1));
        Assert.Equal(("<|im_end|>", gen.GetProperty("eos_token_id").GetInt32()), (tok.EosToken?.Content, tok.EosToken?.Id ?? -1));
        Assert.Equal("<unk>", tok.UnkToken?.Content);
        foreach (var id in new[] { 0, 1, 2, tok.UnkToken!.Id!.Value })
            Assert.True(tok.IsSpecial(id), $"id {id} ({tok.IdToToken(id)}) should be special");
        Assert.False(tok.IsSpecial(tok.TokenToId("a") ?? throw new InvalidOperationException("no token 'a'")));
        Assert.NotNull(tok.ChatTemplateSource);
        // The golden file recorded the same four as transformers saw them.
        var specials = Golden("llama").GetProperty("special_tokens");
        foreach (var (key, token) in new[] { ("bos", tok.BosToken), ("eos", tok.EosToken), ("pad", tok.PadToken), ("unk", tok.UnkToken) })
        {
            Assert.Equal(specials.GetProperty(key).GetProperty("content").GetString(), token?.Content);
            Assert.Equal(specials.GetProperty(key).GetProperty("id").GetInt32(), token?.Id);
        }
    }

    [Theory]
    [MemberData(nameof(CheckIndices))]
    public void Encodes_and_decodes_like_transformers(int index)
    {
        var check = Golden("llama").GetProperty("tokenizer_checks")[index];
        var tok = s_llama.Value;
        var text = check.GetProperty("text").GetString()!;
        var what = $"tiny tokenizer, text {TokenizerParityTests.Show(text)}";

        TokenizerParityTests.AssertIds(tok, what + " add_special_tokens=True", text, TokenizerParityTests.Ints(check.GetProperty("ids")), tok.EncodeIds(text, addSpecialTokens: true));
        var encoding = tok.Encode(text, addSpecialTokens: false);
        TokenizerParityTests.AssertIds(tok, what + " add_special_tokens=False", text, TokenizerParityTests.Ints(check.GetProperty("ids_no_special")), encoding.Ids);
        var toUtf16 = TokenizerParityTests.CodePointToUtf16(text);
        var offsets = check.GetProperty("offsets").EnumerateArray()
            .Select(p => new TokenOffset(toUtf16[p[0].GetInt32()], toUtf16[p[1].GetInt32()])).ToArray();
        Assert.Equal(offsets, encoding.Offsets);
        var ids = TokenizerParityTests.Ints(check.GetProperty("ids"));
        Assert.Equal(check.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()), ids.Select(tok.IdToToken));
        TokenizerParityTests.AssertText(what + " decode", check.GetProperty("decode").GetString()!, tok.Decode(ids));
        TokenizerParityTests.AssertText(what + " decode(skip_special_tokens)", check.GetProperty("decode_skip_special").GetString()!,
            tok.Decode(ids, skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(FamilyNames))]
    public void Chat_prompts_and_responses_match_transformers(string family)
    {
        var golden = Golden(family);
        var tok = Load(family);
        var cases = golden.GetProperty("cases").EnumerateArray().ToArray();
        Assert.True(cases.Length >= 3, $"{family}: expected at least 3 golden cases, found {cases.Length}");

        foreach (var c in cases)
        {
            var name = $"{family} [{c.GetProperty("name").GetString()}]";
            var messages = c.GetProperty("messages").EnumerateArray().Select(m => (object?)m.Clone()).ToList();
            var prompt = c.GetProperty("prompt").GetString()!;

            TokenizerParityTests.AssertText(name + " prompt", prompt, tok.ApplyChatTemplate(messages, new ChatTemplateOptions { AddGenerationPrompt = true }));
            TokenizerParityTests.AssertIds(tok, name + " prompt ids", prompt, TokenizerParityTests.Ints(c.GetProperty("prompt_ids")), tok.EncodeIds(prompt, addSpecialTokens: false));
            TokenizerParityTests.AssertText(name + " response = decode(new_ids, skip_special_tokens=True)", c.GetProperty("response").GetString()!,
                tok.Decode(TokenizerParityTests.Ints(c.GetProperty("new_ids")), skipSpecialTokens: true));
        }
    }

    [Theory]
    [MemberData(nameof(FamilyNames))]
    public void Every_family_carries_the_same_current_tokenizer_files(string family)
    {
        var golden = Golden(family);
        var files = golden.GetProperty("tokenizer_files").EnumerateObject().ToArray();
        Assert.Contains(files, f => f.Name == "tokenizer.json");
        foreach (var f in files)
        {
            var path = Path.Combine(Folder(family), f.Name);
            Assert.True(File.Exists(path), $"{path} is listed in infer_golden.json but missing; commit every file make_infer_fixtures.py wrote.");
            var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
            Assert.True(sha == f.Value.GetString(), $"{path} changed since infer_golden.json was made: rerun tools/make_infer_fixtures.py.");
        }
        Assert.Equal(File.ReadAllBytes(Path.Combine(Folder("llama"), "tokenizer.json")), File.ReadAllBytes(Path.Combine(Folder(family), "tokenizer.json")));
    }
}
