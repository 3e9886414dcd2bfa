using System.Text.Json;

namespace Osprey.Tokenization;

public sealed partial class Tokenizer
{
    /// <summary>Loads the tokenizer files of a model folder (a folder with only tokenizer files is fine).</summary>
    public static Tokenizer Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory)) throw new OspreyException($"Tokenizer folder {directory} does not exist.");
        var jsonPath = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(jsonPath))
        {
            var hint = File.Exists(Path.Combine(directory, "tokenizer.model"))
                ? " It has only a SentencePiece tokenizer.model; convert it once with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir)) to get tokenizer.json."
                : " Point --model at a Hugging Face model folder.";
            throw new OspreyException($"{directory} has no tokenizer.json.{hint}");
        }
        string? Read(string name)
        {
            var p = Path.Combine(directory, name);
            return File.Exists(p) ? File.ReadAllText(p) : null;
        }
        var extraTemplates = new Dictionary<string, string>(StringComparer.Ordinal);
        var extraDir = Path.Combine(directory, "additional_chat_templates");
        if (Directory.Exists(extraDir))
        {
            foreach (var f in Directory.GetFiles(extraDir, "*.jinja")) extraTemplates[Path.GetFileNameWithoutExtension(f)] = File.ReadAllText(f);
        }
        var tokenizer = FromJson(File.ReadAllBytes(jsonPath), Read("tokenizer_config.json"), Read("special_tokens_map.json"),
            Read("chat_template.jinja"), Read("chat_template.json"), extraTemplates, directory);
        tokenizer.SourceDirectory = Path.GetFullPath(directory);
        return tokenizer;
    }

    /// <summary>Builds a tokenizer from the contents of tokenizer.json and, optionally, tokenizer_config.json.</summary>
    public static Tokenizer FromJson(string tokenizerJson, string? tokenizerConfigJson = null) =>
        FromJson(System.Text.Encoding.UTF8.GetBytes(tokenizerJson), tokenizerConfigJson, null, null, null, null, "tokenizer.json");

    private static Tokenizer FromJson(byte[] tokenizerJson, string? configJson, string? specialMapJson, string? templateJinja,
        string? templateJson, IReadOnlyDictionary<string, string>? extraTemplates, string where)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(tokenizerJson, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new OspreyException($"{where}: tokenizer.json is not valid JSON (line {e.LineNumber + 1}): {e.Message}");
        }
        using var docScope = doc;
        var root = doc.RootElement;
        var t = new Tokenizer();

        if (!root.TryGetProperty("model", out var model)) throw new OspreyException($"{where}: tokenizer.json has no \"model\".");
        var modelType = model.TryGetProperty("type", out var mt) ? mt.GetString() : (model.TryGetProperty("merges", out _) ? "BPE" : null);
        if (modelType != "BPE")
            throw new OspreyException($"{where}: tokenizer.json model type '{modelType}' is not supported yet; Osprey reads BPE tokenizers (Llama, Qwen, Gemma, Mistral, DeepSeek, GPT-2 style).");
        t._model = new BpeModel(model, "model");
        t._normalizer = Get(root, "normalizer", Normalizer.FromJson);
        t._preTokenizer = Get(root, "pre_tokenizer", PreTokenizer.FromJson);
        t._postProcessor = Get(root, "post_processor", PostProcessor.FromJson);
        t._decoder = Get(root, "decoder", Decoder.FromJson);
        t._fastSplits = FastSplits(t._preTokenizer);

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedJson) && addedJson.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedJson.EnumerateArray()) added.Add(ReadAddedToken(a, a.GetProperty("id").GetInt32()));
        }

        JsonElement config = default;
        JsonDocument? configDoc = null;
        if (configJson is not null)
        {
            try
            {
                configDoc = JsonDocument.Parse(configJson);
            }
            catch (JsonException e)
            {
                throw new OspreyException($"{where}: tokenizer_config.json is not valid JSON (line {e.LineNumber + 1}): {e.Message}");
            }
            config = configDoc.RootElement;
        }
        using var configScope = configDoc;
        using var specialDoc = specialMapJson is null ? null : JsonDocument.Parse(specialMapJson);

        // Tokens that tokenizer_config.json adds beyond tokenizer.json (transformers adds them on load).
        if (config.ValueKind == JsonValueKind.Object && config.TryGetProperty("added_tokens_decoder", out var decoderTokens) &&
            decoderTokens.ValueKind == JsonValueKind.Object)
        {
            var known = added.Select(a => a.Id).ToHashSet();
            foreach (var p in decoderTokens.EnumerateObject())
            {
                if (!int.TryParse(p.Name, out var id) || known.Contains(id)) continue;
                added.Add(ReadAddedToken(p.Value, id));
            }
        }
        t._addedById = new Dictionary<int, AddedToken>();
        t._addedByContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var a in added)
        {
            t._addedById[a.Id] = a;
            t._addedByContent[a.Content] = a;
        }
        t._rawMatcher = new AddedTokenMatcher(added.Where(a => !a.Normalized || t._normalizer is null));
        t._normalizedMatcher = new AddedTokenMatcher(added.Where(a => a.Normalized && t._normalizer is not null));
        t.VocabSize = Math.Max(t._model.VocabSize, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);

        // Special tokens and flags from tokenizer_config.json, else special_tokens_map.json.
        SpecialToken? Special(string name)
        {
            string? content = null;
            if (config.ValueKind == JsonValueKind.Object && config.TryGetProperty(name, out var v)) content = TokenContent(v);
            if (content is null && specialDoc is not null && specialDoc.RootElement.TryGetProperty(name, out var s)) content = TokenContent(s);
            return content is null ? null : new SpecialToken(content, t.TokenToId(content));
        }
        t.BosToken = Special("bos_token");
        t.EosToken = Special("eos_token");
        t.PadToken = Special("pad_token");
        t.UnkToken = Special("unk_token");
        var templateVars = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, token) in new[] { ("bos_token", t.BosToken), ("eos_token", t.EosToken), ("unk_token", t.UnkToken), ("pad_token", t.PadToken) })
        {
            if (token is not null) templateVars[name] = token.Content;
        }
        foreach (var name in new[] { "sep_token", "cls_token", "mask_token" })
        {
            var token = Special(name);
            if (token is not null) templateVars[name] = token.Content;
        }
        if (config.ValueKind == JsonValueKind.Object)
        {
            if (config.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
                templateVars["additional_special_tokens"] = extra.EnumerateArray().Select(TokenContent).Where(c => c is not null).Cast<object?>().ToList();
            if (config.TryGetProperty("extra_special_tokens", out var named) && named.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in named.EnumerateObject())
                {
                    var c = TokenContent(p.Value);
                    if (c is not null) templateVars[p.Name] = c;
                }
            }
            t.CleanUpTokenizationSpaces = TokenizerJson.Bool(config, "clean_up_tokenization_spaces", false);
            t._cleanUpForcedForBpe = TokenizerJson.Bool(config, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", false);
            if (config.TryGetProperty("model_max_length", out var maxLength) && maxLength.ValueKind == JsonValueKind.Number &&
                maxLength.TryGetInt64(out var ml) && ml < 1L << 40)
                t.ModelMaxLength = ml;
            ReadTemplates(t, config);
        }
        t._templateSpecialTokens = templateVars;

        if (templateJson is not null)
        {
            using var tj = JsonDocument.Parse(templateJson);
            ReadTemplates(t, tj.RootElement);
        }
        if (templateJinja is not null) t.ChatTemplateSource = templateJinja;
        if (extraTemplates is { Count: > 0 })
        {
            var named = new Dictionary<string, string>(t.NamedChatTemplates, StringComparer.Ordinal);
            foreach (var (k, v) in extraTemplates) named[k] = v;
            t.NamedChatTemplates = named;
        }
        return t;
    }

    /// <summary>The regexes of a pre-tokenizer made only of isolating regex splits ending in a plain ByteLevel, else null.</summary>
    private static UnicodeRegex[]? FastSplits(PreTokenizer? pre)
    {
        IReadOnlyList<PreTokenizer> steps = pre switch
        {
            SequencePreTokenizer seq => seq.Steps,
            null => [],
            _ => [pre],
        };
        if (steps.Count == 0 || steps[^1] is not ByteLevelPreTokenizer { AddPrefixSpace: false } byteLevel) return null;
        var regexes = new List<UnicodeRegex>();
        foreach (var step in steps.Take(steps.Count - 1))
        {
            if (step is not SplitPreTokenizer { IsolatingRegex: { } regex }) return null;
            regexes.Add(regex);
        }
        if (byteLevel.UseRegex) regexes.Add(ByteLevelPreTokenizer.Gpt2Regex);
        return regexes.ToArray();
    }

    private static T? Get<T>(JsonElement root, string name, Func<JsonElement, string, T?> parse) where T : class =>
        root.TryGetProperty(name, out var e) ? parse(e, name) : null;

    private static AddedToken ReadAddedToken(JsonElement a, int id) => new(
        id,
        a.GetProperty("content").GetString()!,
        TokenizerJson.Bool(a, "special", false),
        TokenizerJson.Bool(a, "lstrip", false),
        TokenizerJson.Bool(a, "rstrip", false),
        TokenizerJson.Bool(a, "normalized", !TokenizerJson.Bool(a, "special", false)),
        TokenizerJson.Bool(a, "single_word", false));

    private static string? TokenContent(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
        _ => null,
    };

    private static void ReadTemplates(Tokenizer t, JsonElement config)
    {
        if (!config.TryGetProperty("chat_template", out var ct)) return;
        if (ct.ValueKind == JsonValueKind.String)
        {
            t.ChatTemplateSource = ct.GetString();
            return;
        }
        if (ct.ValueKind != JsonValueKind.Array) return;
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in ct.EnumerateArray())
        {
            if (item.TryGetProperty("name", out var n) && item.TryGetProperty("template", out var tpl) && n.GetString() is { } name && tpl.GetString() is { } source)
            {
                if (name == "default") t.ChatTemplateSource = source;
                else named[name] = source;
            }
        }
        t.NamedChatTemplates = named;
    }
}
