using Osprey.Tokenization;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// Loading rules and errors of <see cref="Tokenizer"/> on small hand-written tokenizer.json files: unsupported
/// components are named, bad files say where, and the pipeline pieces behave as HF's do on cases the real
/// tokenizers do not reach (Metaspace, lstrip/rstrip added tokens, fused unknowns).
/// </summary>
public sealed class TokenizerLoadingTests
{
    private const string Vocab = """{"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "▁": 5, "▁a": 6, "<s>": 7}""";
    private const string Merges = """["a b", "▁ a"]""";

    private static string Json(string normalizer = "null", string pre = "null", string decoder = "null", string model = "",
        string added = "[]", string post = "null") => $$"""
        {"version": "1.0", "added_tokens": {{added}}, "normalizer": {{normalizer}}, "pre_tokenizer": {{pre}},
         "post_processor": {{post}}, "decoder": {{decoder}},
         "model": {{(model.Length > 0 ? model : $$"""{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {{Vocab}}, "merges": {{Merges}}}""")}}}
        """;

    [Theory]
    [InlineData("normalizer", """{"type": "Precompiled", "precompiled_charsmap": ""}""", "Precompiled")]
    [InlineData("pre_tokenizer", """{"type": "UnicodeScripts"}""", "UnicodeScripts")]
    [InlineData("decoder", """{"type": "CTC"}""", "CTC")]
    public void An_unsupported_component_is_named_with_its_place(string place, string component, string type)
    {
        var json = place switch
        {
            "normalizer" => Json(normalizer: component),
            "pre_tokenizer" => Json(pre: component),
            _ => Json(decoder: component),
        };
        var e = Assert.ThrowsAny<OspreyException>(() => Tokenizer.FromJson(json));
        Assert.Contains(type, e.Message);
        Assert.Contains(place, e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void A_unigram_model_is_refused_with_the_model_type()
    {
        var e = Assert.ThrowsAny<OspreyException>(() => Tokenizer.FromJson(Json(model: """{"type": "Unigram", "vocab": [["a", -1.0]]}""")));
        Assert.Contains("'Unigram'", e.Message);
        Assert.Contains("BPE", e.Message);
    }

    [Fact]
    public void A_merge_with_a_token_missing_from_the_vocabulary_names_the_merge()
    {
        var json = Json(model: $$"""{"type": "BPE", "vocab": {{Vocab}}, "merges": ["a b", "b z"]}""");
        var e = Assert.ThrowsAny<OspreyException>(() => Tokenizer.FromJson(json));
        Assert.Contains("merges[1]", e.Message);
        Assert.Contains("'z'", e.Message);
    }

    [Fact]
    public void A_folder_with_only_a_sentencepiece_model_says_how_to_get_tokenizer_json()
    {
        using var temp = new TempDirectory();
        File.WriteAllBytes(temp.File("tokenizer.model"), [1, 2, 3]);
        var e = Assert.ThrowsAny<OspreyException>(() => Tokenizer.Load(temp.Path));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("save_pretrained", e.Message);
    }

    [Fact]
    public void Invalid_json_names_the_line()
    {
        var e = Assert.ThrowsAny<OspreyException>(() => Tokenizer.FromJson("{\n\"model\": {\n,}"));
        Assert.Contains("line 3", e.Message);
    }

    [Fact]
    public void Unknown_chars_fuse_into_one_unk_and_merges_apply_lowest_rank_first()
    {
        var tok = Tokenizer.FromJson(Json());
        // "abzzc": a+b merge to "ab"; the two unknown z's fuse into one <unk> (fuse_unk) spanning both.
        var enc = tok.Encode("abzzc");
        Assert.Equal([4, 0, 3], enc.Ids);
        Assert.Equal([new TokenOffset(0, 2), new TokenOffset(2, 4), new TokenOffset(4, 5)], enc.Offsets);
    }

    [Fact]
    public void Metaspace_prepends_on_the_first_piece_only_and_the_decoder_removes_it()
    {
        var tok = Tokenizer.FromJson(Json(
            pre: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""",
            decoder: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""",
            added: """[{"id": 7, "content": "<s>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}]"""));
        // "a a": pieces "▁a" and "▁a"; after <s> the text no longer starts at offset 0, so no prefix is added.
        Assert.Equal([6, 6], tok.EncodeIds("a a"));
        Assert.Equal([7, 1], tok.EncodeIds("<s>a"));
        Assert.Equal("a a", tok.Decode([6, 6]));
        Assert.Equal("a", tok.Decode([7, 1], skipSpecialTokens: true));
    }

    [Fact]
    public void Lstrip_and_rstrip_added_tokens_absorb_the_spaces_around_them()
    {
        var tok = Tokenizer.FromJson(Json(added:
            """[{"id": 7, "content": "<s>", "special": true, "normalized": false, "lstrip": true, "rstrip": true, "single_word": false}]"""));
        var enc = tok.Encode("a  <s>  b");
        Assert.Equal([1, 7, 2], enc.Ids);
        Assert.Equal(new TokenOffset(1, 8), enc.Offsets[1]);
    }

    [Fact]
    public void Template_post_processor_adds_bos_only_with_special_tokens()
    {
        var tok = Tokenizer.FromJson(Json(post: """
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [7], "tokens": ["<s>"]}}}
            """));
        var enc = tok.Encode("ab");
        Assert.Equal([7, 4], enc.Ids);
        Assert.Equal(new TokenOffset(0, 0), enc.Offsets[0]);
        Assert.Equal([4], tok.EncodeIds("ab", addSpecialTokens: false));
    }

    [Fact]
    public void Whole_line_words_are_cut_only_where_no_token_crosses_the_cut()
    {
        // A SentencePiece-style vocabulary where ">▁<" is one token: a line is never cut between '>' and '▁',
        // while it is cut before the other '▁'s (the result must equal merging the whole line).
        const string vocab = """{"<unk>": 0, "▁": 1, "a": 2, ">": 3, "<": 4, "▁a": 5, ">▁": 6, ">▁<": 7, "aa": 8, "▁aa": 9}""";
        var json = $$$"""
            {"version": "1.0", "added_tokens": [], "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
             "pre_tokenizer": null, "post_processor": null, "decoder": null,
             "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {{{vocab}}}, "merges": ["> ▁", ">▁ <", "a a", "▁ a", "▁a a"]}}
            """;
        var tok = Tokenizer.FromJson(json);
        // 17+ chars, so the line is cut into words. Merging the whole line by rank gives (worked by hand):
        // "> ▁" then ">▁ <" make ">▁<"; "a a" pairs from the left; "▁ a" only where a single 'a' follows.
        var ids = tok.EncodeIds("aaaa aa a> <a aa aaa");
        Assert.Equal([8, 8, 1, 8, 5, 7, 2, 1, 8, 1, 8, 2], ids);
        Assert.Equal("aaaa▁aa▁a>▁<a▁aa▁aaa", string.Concat(ids.Select(i => tok.IdToToken(i))));
    }
}
