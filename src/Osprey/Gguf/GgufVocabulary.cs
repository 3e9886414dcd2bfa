using System.Text.Json;
using Osprey.Tokenization;

namespace Osprey.Gguf;

/// <summary>
/// The <c>tokenizer.*</c> metadata llama.cpp reads, from a Hugging Face tokenizer.json (BPE models). A byte-level
/// vocabulary (ByteLevel pre-tokenizer) becomes <c>tokenizer.ggml.model = gpt2</c> with its merges and the
/// pre-tokenizer name llama.cpp knows for its split pattern; a SentencePiece-style vocabulary (Metaspace, or byte
/// fallback) becomes <c>llama</c>, whose merge order llama.cpp takes from per-token scores, so each token made by a
/// merge scores minus that merge's rank.
/// </summary>
internal static class GgufVocabulary
{
    // llama.cpp's token types (llama_token_type).
    const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Byte = 6;

    // Split patterns of tokenizer.json → llama.cpp's pre-tokenizer names (llama-vocab.cpp), for the families Osprey runs.
    static readonly (string Pattern, string Name)[] s_preTokenizers =
    [
        (@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", "llama-bpe"),
        (@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", "qwen2"),
        // DeepSeek V3's three splits; its CJK run split is the one no other family has.
        ("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+", "deepseek-v3"),
    ];

    /// <summary>Adds the tokenizer metadata of <paramref name="folder"/> for a model of <paramref name="vocabSize"/> embedding rows.</summary>
    public static void Add(GgufWriter w, string folder, int vocabSize)
    {
        var path = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path)) throw new OspreyException($"{folder} has no tokenizer.json; GGUF export needs the Hugging Face tokenizer (copy it into the model folder).");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
        if (type != "BPE") throw new OspreyException($"{path}: model.type is '{type}'; GGUF export handles BPE vocabularies (byte-level or SentencePiece-style) only.");
        var tokens = new string?[vocabSize];
        foreach (var p in model.GetProperty("vocab").EnumerateObject())
        {
            var id = p.Value.GetInt32();
            if (id >= vocabSize) throw new OspreyException($"{path}: token '{p.Name}' has id {id}, past the model's {vocabSize} embedding rows; the tokenizer does not belong to this model.");
            tokens[id] = p.Name;
        }
        var types = Enumerable.Repeat(Normal, vocabSize).ToArray();
        var tokenizer = Tokenizer.Load(folder);
        if (root.TryGetProperty("added_tokens", out var added))
            foreach (var a in added.EnumerateArray())
            {
                var id = a.GetProperty("id").GetInt32();
                if (id >= vocabSize) continue;
                tokens[id] = a.GetProperty("content").GetString();
                types[id] = a.TryGetProperty("special", out var s) && s.GetBoolean() ? Control : UserDefined;
            }
        var byteLevel = UsesByteLevel(root);
        var byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        for (int id = 0; id < vocabSize; id++)
        {
            // Rows past the tokenizer's vocabulary (embeddings padded to a multiple) get placeholder names, as llama.cpp's converter does.
            if (tokens[id] is null) { tokens[id] = $"[PAD{id}]"; types[id] = UserDefined; continue; }
            if (byteFallback && tokens[id]!.Length == 6 && tokens[id]!.StartsWith("<0x", StringComparison.Ordinal) && tokens[id]!.EndsWith('>')) types[id] = Byte;
        }
        if (tokenizer.UnkToken?.Id is int unk && unk < vocabSize) types[unk] = Unknown;

        var merges = ReadMerges(model, path);
        if (byteLevel)
        {
            w.Add("tokenizer.ggml.model", "gpt2");
            w.Add("tokenizer.ggml.pre", PreTokenizerName(root));
        }
        else
        {
            w.Add("tokenizer.ggml.model", "llama");
            w.Add("tokenizer.ggml.pre", "default");
            // llama.cpp puts "▁" before the text unless told not to; Hugging Face does only with a Prepend normalizer
            // (Llama 2) or a prepending Metaspace, not for Gemma's plain space replacement.
            w.Add("tokenizer.ggml.add_space_prefix", PrependsSpace(root));
        }
        w.AddArray("tokenizer.ggml.tokens", GgufValueType.String, tokens!);
        if (!byteLevel)
        {
            var scores = new float[vocabSize];
            var rank = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < merges.Count; i++) rank.TryAdd(merges[i].Left + merges[i].Right, i);
            for (int id = 0; id < vocabSize; id++)
                scores[id] = rank.TryGetValue(tokens[id]!, out var r) ? -r : -(merges.Count + id);
            w.AddArray("tokenizer.ggml.scores", GgufValueType.Float32, scores);
        }
        w.AddArray("tokenizer.ggml.token_type", GgufValueType.Int32, types);
        if (byteLevel) w.AddArray("tokenizer.ggml.merges", GgufValueType.String, merges.Select(m => m.Left + " " + m.Right).ToArray());
        if (tokenizer.BosToken?.Id is int bos) w.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if (tokenizer.EosToken?.Id is int eos) w.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        if (tokenizer.UnkToken?.Id is int u) w.Add("tokenizer.ggml.unknown_token_id", (uint)u);
        if (tokenizer.PadToken?.Id is int pad) w.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        // Whether the tokenizer's post-processor puts BOS first, found by encoding one character.
        var probe = tokenizer.EncodeIds("a", addSpecialTokens: true);
        w.Add("tokenizer.ggml.add_bos_token", tokenizer.BosToken?.Id is int b && probe.Length > 0 && probe[0] == b);
        w.Add("tokenizer.ggml.add_eos_token", tokenizer.EosToken?.Id is int e && probe.Length > 1 && probe[^1] == e);
        if (tokenizer.ChatTemplateSource is { } template) w.Add("tokenizer.chat_template", template);
    }

    /// <summary>Whether tokenizer.json of <paramref name="folder"/> has every one of <paramref name="tokens"/> (vocabulary or added tokens).</summary>
    public static bool HasTokens(string folder, IEnumerable<string> tokens)
    {
        var path = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path)) return false;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var all = new HashSet<string>(StringComparer.Ordinal);
        if (root.TryGetProperty("model", out var model) && model.TryGetProperty("vocab", out var vocab) && vocab.ValueKind == JsonValueKind.Object)
            foreach (var p in vocab.EnumerateObject()) all.Add(p.Name);
        if (root.TryGetProperty("added_tokens", out var added))
            foreach (var a in added.EnumerateArray()) all.Add(a.GetProperty("content").GetString() ?? "");
        return tokens.All(all.Contains);
    }

    static bool PrependsSpace(JsonElement root)
    {
        static IEnumerable<JsonElement> Parts(JsonElement e)
        {
            if (e.ValueKind != JsonValueKind.Object) yield break;
            yield return e;
            foreach (var key in new[] { "normalizers", "pretokenizers" })
                if (e.TryGetProperty(key, out var list))
                    foreach (var item in list.EnumerateArray())
                        foreach (var inner in Parts(item)) yield return inner;
        }
        var parts = new List<JsonElement>();
        if (root.TryGetProperty("normalizer", out var n)) parts.AddRange(Parts(n));
        if (root.TryGetProperty("pre_tokenizer", out var p)) parts.AddRange(Parts(p));
        foreach (var part in parts)
        {
            var type = part.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type == "Prepend") return true;
            if (type == "Metaspace")
            {
                if (part.TryGetProperty("prepend_scheme", out var scheme)) return scheme.GetString() != "never";
                return !part.TryGetProperty("add_prefix_space", out var a) || a.ValueKind != JsonValueKind.False;
            }
        }
        return false;
    }

    static bool UsesByteLevel(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object) return false;
        return Types(pre).Contains("ByteLevel");
    }

    static IEnumerable<string> Types(JsonElement e)
    {
        if (e.TryGetProperty("type", out var t) && t.GetString() is { } s) yield return s;
        if (e.TryGetProperty("pretokenizers", out var list))
            foreach (var item in list.EnumerateArray())
                foreach (var inner in Types(item)) yield return inner;
    }

    static string PreTokenizerName(JsonElement root)
    {
        var pre = root.GetProperty("pre_tokenizer");
        var patterns = new List<string>();
        void Collect(JsonElement e)
        {
            if (e.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var rx) && rx.GetString() is { } s) patterns.Add(s);
            if (e.TryGetProperty("pretokenizers", out var list)) foreach (var item in list.EnumerateArray()) Collect(item);
        }
        Collect(pre);
        foreach (var (pattern, name) in s_preTokenizers)
            if (patterns.Contains(pattern)) return name;
        // A lone ByteLevel with its built-in split is GPT-2's pre-tokenizer.
        return patterns.Count == 0 ? "gpt-2" : "default";
    }

    static List<(string Left, string Right)> ReadMerges(JsonElement model, string path)
    {
        var merges = new List<(string, string)>();
        if (!model.TryGetProperty("merges", out var list)) return merges;
        foreach (var m in list.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.Array) merges.Add((m[0].GetString()!, m[1].GetString()!));
            else
            {
                var s = m.GetString()!;
                var space = s.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0) throw new OspreyException($"{path}: merge '{s}' is not two tokens separated by a space.");
                merges.Add((s[..space], s[(space + 1)..]));
            }
        }
        return merges;
    }
}
