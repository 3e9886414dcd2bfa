using System.Text.Json.Nodes;

namespace Osprey.Gguf;

/// <summary>
/// Writes tokenizer.json and tokenizer_config.json for a GGUF file's <c>tokenizer.*</c> metadata: <c>gpt2</c> as a
/// byte-level BPE (the split pattern chosen by <c>tokenizer.ggml.pre</c>), <c>llama</c> as a SentencePiece-style BPE
/// whose merges come from the scores (each token that splits into two vocabulary tokens is a merge, ranked by its
/// score, as transformers' SentencePiece converter does).
/// </summary>
internal static class GgufTokenizerJson
{
    static readonly Dictionary<string, string> s_patterns = new(StringComparer.Ordinal)
    {
        ["llama-bpe"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ["qwen2"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    };

    public static void Write(GgufFile file, string folder)
    {
        var kind = file.RequireString("tokenizer.ggml.model");
        if (kind is not ("gpt2" or "llama")) throw new OspreyException($"{file.Path}: tokenizer.ggml.model '{kind}' is not one Osprey loads from GGUF yet (gpt2, llama).");
        var tokens = ((GgufArray)(file.Get("tokenizer.ggml.tokens") ?? throw new OspreyException($"{file.Path} lacks tokenizer.ggml.tokens; it has no vocabulary."))).Items.Cast<string>().ToArray();
        var types = file.Get("tokenizer.ggml.token_type") is GgufArray ta ? ta.Items.Select(Convert.ToInt32).ToArray() : new int[tokens.Length];
        int? Id(string key) => file.Get(key) is { } v ? Convert.ToInt32(v) : null;
        var bos = Id("tokenizer.ggml.bos_token_id");
        var eos = Id("tokenizer.ggml.eos_token_id");
        var unk = Id("tokenizer.ggml.unknown_token_id");
        var pad = Id("tokenizer.ggml.padding_token_id");

        var added = new JsonArray();
        var vocab = new JsonObject();
        for (int id = 0; id < tokens.Length; id++)
        {
            if (types[id] is 3 or 4)
                added.Add(new JsonObject
                {
                    ["id"] = id, ["content"] = tokens[id], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = false, ["special"] = types[id] == 3,
                });
            vocab[tokens[id]] = id;
        }
        JsonArray merges;
        JsonNode? pre, decoder, normalizer = null;
        var byteFallback = types.Contains(6);
        if (kind == "gpt2")
        {
            merges = new JsonArray();
            if (file.Get("tokenizer.ggml.merges") is GgufArray ma)
                foreach (string m in ma.Items)
                {
                    var space = m.IndexOf(' ', StringComparison.Ordinal);
                    merges.Add(new JsonArray(m[..space], m[(space + 1)..]));
                }
            var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false };
            pre = file.Get("tokenizer.ggml.pre") is string name && s_patterns.TryGetValue(name, out var pattern)
                ? new JsonObject
                {
                    ["type"] = "Sequence",
                    ["pretokenizers"] = new JsonArray(
                        new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                        byteLevel),
                }
                : new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
            decoder = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true };
        }
        else
        {
            merges = MergesFromScores(file, tokens, types);
            // llama.cpp puts "▁" before the text unless add_space_prefix is false (Gemma); then spaces only become "▁"
            // and decoding strips nothing.
            // add_space_prefix true: a Metaspace prepending "▁" to the first piece (what the SentencePiece-style
            // tokenizers Osprey exports do; the file cannot say whether it was Llama 2's Prepend normalizer instead).
            // false (Gemma): spaces only become "▁", no pre-tokenizer splits.
            var addSpace = file.Get("tokenizer.ggml.add_space_prefix") is not false;
            if (addSpace) pre = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false };
            else
            {
                normalizer = new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" };
                pre = null;
            }
            var decoders = new JsonArray(
                new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                new JsonObject { ["type"] = "ByteFallback" },
                new JsonObject { ["type"] = "Fuse" });
            if (addSpace) decoders.Add(new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 });
            decoder = new JsonObject { ["type"] = "Sequence", ["decoders"] = decoders };
        }
        JsonNode? post = null;
        if (file.Get("tokenizer.ggml.add_bos_token") is true && bos is int b)
            post = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special(tokens[b]), Sequence("A")),
                ["pair"] = new JsonArray(Special(tokens[b]), Sequence("A"), Special(tokens[b]), Sequence("B")),
                ["special_tokens"] = new JsonObject { [tokens[b]] = new JsonObject { ["id"] = tokens[b], ["ids"] = new JsonArray(b), ["tokens"] = new JsonArray(tokens[b]) } },
            };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = pre,
            ["post_processor"] = post,
            ["decoder"] = decoder,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = unk is int u ? tokens[u] : null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = kind == "llama", ["byte_fallback"] = byteFallback, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        var options = new System.Text.Json.JsonSerializerOptions { WriteIndented = false };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), json.ToJsonString(options));
        var config = new JsonObject { ["tokenizer_class"] = "PreTrainedTokenizerFast", ["clean_up_tokenization_spaces"] = false };
        if (bos is int bb) config["bos_token"] = tokens[bb];
        if (eos is int e) config["eos_token"] = tokens[e];
        if (unk is int uu) config["unk_token"] = tokens[uu];
        if (pad is int p) config["pad_token"] = tokens[p];
        if (file.Get("tokenizer.chat_template") is string template) config["chat_template"] = template;
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    static JsonObject Special(string token) => new() { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = 0 } };

    static JsonObject Sequence(string id) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };

    static JsonArray MergesFromScores(GgufFile file, string[] tokens, int[] types)
    {
        var scores = file.Get("tokenizer.ggml.scores") is GgufArray sa ? sa.Items.Select(Convert.ToSingle).ToArray() : new float[tokens.Length];
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
            if (types[i] is 1 or 2 or 4 or 6 or 0) ids.TryAdd(tokens[i], i);
        var candidates = new List<(float Score, int Left, int Right, string L, string R)>();
        for (int id = 0; id < tokens.Length; id++)
        {
            // User-defined tokens too: Gemma's runs of "▁" are added tokens that BPE also builds from the text.
            if (types[id] is not (1 or 4 or 0)) continue;
            var piece = tokens[id];
            for (int i = 1; i < piece.Length; i++)
            {
                if (char.IsLowSurrogate(piece[i])) continue;
                var l = piece[..i];
                var r = piece[i..];
                if (ids.TryGetValue(l, out var li) && ids.TryGetValue(r, out var ri)) candidates.Add((scores[id], li, ri, l, r));
            }
        }
        var merges = new JsonArray();
        foreach (var c in candidates.OrderByDescending(c => c.Score).ThenBy(c => c.Left).ThenBy(c => c.Right))
            merges.Add(new JsonArray(c.L, c.R));
        return merges;
    }
}
