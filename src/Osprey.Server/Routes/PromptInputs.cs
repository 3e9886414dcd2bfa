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
        if (first == JsonValueKind.Number) return [Ids(v, field)];
        var list = new List<int[]>();
        foreach (var e in v.EnumerateArray())
        {
            var at = $"{field}[{list.Count}]";
            if (e.ValueKind != first) throw ApiException.Bad($"'{at}' is a {Kind(e)} but '{field}[0]' a {Kind(v[0])}; {shape}", at);
            list.Add(e.ValueKind switch
            {
                JsonValueKind.String => model.EncodeText(e.GetString()!),
                JsonValueKind.Array => Ids(e, at),
                _ => throw ApiException.Bad($"'{at}' is a {Kind(e)}; {shape}", at),
            });
        }
        if (list.Count > GenerationRequest.MaxChoices)
            throw ApiException.Bad($"'{field}' holds {list.Count} entries; send {GenerationRequest.MaxChoices} at most per request.", field);
        return list;

        // Ids outside the vocabulary are refused here, where the path to the entry is known (the engine would only
        // say "the prompt").
        int[] Ids(JsonElement array, string path)
        {
            var ids = new int[array.GetArrayLength()];
            var vocab = model.Engine.Model.Spec.VocabSize;
            var i = 0;
            foreach (var e in array.EnumerateArray())
            {
                var at = $"{path}[{i}]";
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i])) throw ApiException.Bad($"'{at}' must be an integer token id.", at);
                if (ids[i] < 0 || ids[i] >= vocab) throw ApiException.Bad($"'{at}' is token id {ids[i]}, outside the model's vocabulary of {vocab}; ids run from 0 to {vocab - 1}.", at);
                i++;
            }
            return ids;
        }

        static string Kind(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.String => "string",
            JsonValueKind.Array => "list",
            JsonValueKind.Number => "number",
            JsonValueKind.Object => "object",
            _ => e.ValueKind.ToString().ToLowerInvariant(),
        };
    }
}
