using System.Text.Json;

namespace Osprey.Tokenization;

/// <summary>A tokenizer.json post-processor: adds special tokens around a single sequence and adjusts offsets.</summary>
internal abstract class PostProcessor
{
    /// <summary>Rewrites the encoding; special tokens it adds get offsets (0, 0).</summary>
    public abstract void Process(List<int> ids, List<TokenOffset> offsets, bool addSpecialTokens, Func<int, string?> idToToken);

    public static PostProcessor? FromJson(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        var type = TokenizerJson.Type(e, path);
        switch (type)
        {
            case "TemplateProcessing": return TemplatePostProcessor.FromJson(e, path);
            case "ByteLevel": return new ByteLevelPostProcessor(TokenizerJson.Bool(e, "trim_offsets", true));
            case "RobertaProcessing":
            case "BertProcessing":
            {
                var cls = e.GetProperty("cls");
                var sep = e.GetProperty("sep");
                var trim = type == "RobertaProcessing" && TokenizerJson.Bool(e, "trim_offsets", true);
                return new Sequence([
                    .. trim ? new PostProcessor[] { new ByteLevelPostProcessor(true) } : [],
                    new TemplatePostProcessor([cls[1].GetInt32()], [sep[1].GetInt32()]),
                ]);
            }
            case "Sequence":
                var list = new List<PostProcessor>();
                var i = 0;
                foreach (var child in e.GetProperty("processors").EnumerateArray())
                {
                    var p = FromJson(child, $"{path}.processors[{i++}]");
                    if (p is not null) list.Add(p);
                }
                return new Sequence(list);
            default:
                throw TokenizerJson.Unsupported("post-processor", type, path);
        }
    }

    private sealed class Sequence(IReadOnlyList<PostProcessor> steps) : PostProcessor
    {
        public override void Process(List<int> ids, List<TokenOffset> offsets, bool addSpecialTokens, Func<int, string?> idToToken)
        {
            foreach (var s in steps) s.Process(ids, offsets, addSpecialTokens, idToToken);
        }
    }
}

/// <summary>TemplateProcessing's single-sequence template: special token ids before and after $A.</summary>
internal sealed class TemplatePostProcessor(int[] before, int[] after) : PostProcessor
{
    public IReadOnlyList<int> Before => before;

    public IReadOnlyList<int> After => after;

    public static new TemplatePostProcessor FromJson(JsonElement e, string path)
    {
        var special = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (e.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in st.EnumerateObject())
                special[p.Name] = p.Value.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        }
        var beforeIds = new List<int>();
        var afterIds = new List<int>();
        var seenSequence = false;
        foreach (var item in e.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _))
            {
                seenSequence = true;
                continue;
            }
            if (!item.TryGetProperty("SpecialToken", out var token))
                throw new OspreyException($"tokenizer.json {path}.single has an item that is neither SpecialToken nor Sequence.");
            var id = token.GetProperty("id").GetString()!;
            if (!special.TryGetValue(id, out var ids))
                throw new OspreyException($"tokenizer.json {path}.single uses special token '{id}' missing from {path}.special_tokens.");
            (seenSequence ? afterIds : beforeIds).AddRange(ids);
        }
        return new TemplatePostProcessor(beforeIds.ToArray(), afterIds.ToArray());
    }

    public override void Process(List<int> ids, List<TokenOffset> offsets, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        if (!addSpecialTokens) return;
        ids.InsertRange(0, before);
        offsets.InsertRange(0, Enumerable.Repeat(new TokenOffset(0, 0), before.Length));
        ids.AddRange(after);
        offsets.AddRange(Enumerable.Repeat(new TokenOffset(0, 0), after.Length));
    }
}

/// <summary>ByteLevel post-processing: with trim_offsets, token offsets exclude leading/trailing spaces.</summary>
internal sealed class ByteLevelPostProcessor(bool trimOffsets) : PostProcessor
{
    public override void Process(List<int> ids, List<TokenOffset> offsets, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        if (!trimOffsets) return;
        var space = ByteLevelAlphabet.ByteToChar((byte)' ');
        for (var i = 0; i < ids.Count; i++)
        {
            var token = idToToken(ids[i]);
            if (token is null) continue;
            var leading = 0;
            while (leading < token.Length && (token[leading] == space || char.IsWhiteSpace(token[leading]))) leading++;
            var trailing = 0;
            while (trailing < token.Length - leading && (token[^(trailing + 1)] == space || char.IsWhiteSpace(token[^(trailing + 1)]))) trailing++;
            var (start, end) = (offsets[i].Start, offsets[i].End);
            if (leading > 0) start = Math.Min(start + leading, end);
            if (trailing > 0 && end >= trailing) end = Math.Max(end - trailing, start);
            offsets[i] = new TokenOffset(start, end);
        }
    }
}
