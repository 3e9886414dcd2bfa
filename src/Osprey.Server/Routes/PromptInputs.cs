using System.Text.Json;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The prompt(s) of /v1/completions and the input(s) of /v1/embeddings, as token ids.</summary>
internal static class PromptInputs
{
    /// <summary>A string, a list of strings, a list of token ids, or a list of token-id lists.</summary>
    public static IReadOnlyList<int[]> Read(RequestFields f, string field, ServedModel model)
    {
        var shape = $"'{field}' must be a string, a list of strings, a list of token ids, or a list of token-id lists.";
        if (f.Get(field) is not { } v) throw ApiException.Bad($"'{field}' is required.", field);
        if (v.ValueKind == JsonValueKind.String) return [model.EncodeText(v.GetString()!)];
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0) throw ApiException.Bad(shape, field);
        var first = v[0].ValueKind;
        if (first == JsonValueKind.Number) return [Ids(v)];
        var list = new List<int[]>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != first) throw ApiException.Bad(shape, field);
            list.Add(e.ValueKind switch
            {
                JsonValueKind.String => model.EncodeText(e.GetString()!),
                JsonValueKind.Array => Ids(e),
                _ => throw ApiException.Bad(shape, field),
            });
        }
        if (list.Count > GenerationRequest.MaxChoices)
            throw ApiException.Bad($"'{field}' holds {list.Count} entries; send {GenerationRequest.MaxChoices} at most per request.", field);
        return list;

        int[] Ids(JsonElement array)
        {
            var ids = new int[array.GetArrayLength()];
            var i = 0;
            foreach (var e in array.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i++])) throw ApiException.Bad($"'{field}' token ids must be integers.", field);
            }
            return ids;
        }
    }
}
