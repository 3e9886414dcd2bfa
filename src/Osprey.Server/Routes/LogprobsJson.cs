using System.Text.Json;
using System.Text.Json.Serialization;
using Osprey.Serving;
using Osprey.Tokenization;

namespace Osprey.Server;

/// <summary>Token log-probabilities in the two shapes OpenAI uses: chat's and the legacy completions one.</summary>
internal static class LogprobsJson
{
    /// <summary>
    /// Chat's <c>logprobs</c>: <c>{"content": [...], "refusal": null}</c>; OpenAI's object has both fields (required,
    /// nullable), and this server never refuses.
    /// </summary>
    public sealed record Chat(
        [property: JsonPropertyName("content")] IReadOnlyList<ChatToken> Content,
        [property: JsonPropertyName("refusal")] IReadOnlyList<ChatToken>? Refusal = null);

    /// <summary>One token: its text, log-probability and UTF-8 bytes; the chosen tokens also list their alternatives.</summary>
    public sealed record ChatToken(
        [property: JsonPropertyName("token")] string Token,
        [property: JsonPropertyName("logprob")] float Logprob,
        [property: JsonPropertyName("bytes")] int[] Bytes,
        [property: JsonPropertyName("top_logprobs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ChatToken>? TopLogprobs);

    /// <summary>The completions API's <c>logprobs</c>: parallel lists.</summary>
    public sealed record Legacy(
        [property: JsonPropertyName("tokens")] IReadOnlyList<string> Tokens,
        [property: JsonPropertyName("token_logprobs")] IReadOnlyList<float> TokenLogprobs,
        [property: JsonPropertyName("top_logprobs")] IReadOnlyList<Alternatives> TopLogprobs,
        [property: JsonPropertyName("text_offset")] IReadOnlyList<int> TextOffset);

    /// <summary>
    /// One token's alternatives as an object from token text to log-probability. Written pair by pair, not as a
    /// dictionary: two token ids can decode to the same text, and both are written as they always were.
    /// </summary>
    [JsonConverter(typeof(AlternativesConverter))]
    public sealed record Alternatives(IReadOnlyList<(string Token, float Logprob)> Items);

    sealed class AlternativesConverter : JsonConverter<Alternatives>
    {
        public override Alternatives Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("Alternatives are only written.");

        public override void Write(Utf8JsonWriter writer, Alternatives value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (token, logprob) in value.Items) writer.WriteNumber(token, logprob);
            writer.WriteEndObject();
        }
    }

    /// <summary>Chat logprobs of <paramref name="tokens"/> with up to <paramref name="top"/> alternatives each.</summary>
    public static Chat ForChat(IEnumerable<GeneratedToken> tokens, int top, Tokenizer tokenizer) =>
        new(tokens.Select(t => Token(t.TokenId, t.Logprob, tokenizer,
            (t.Top ?? []).Take(top).Select(alt => Token(alt.TokenId, alt.Logprob, tokenizer, null)).ToList())).ToList());

    static ChatToken Token(int id, float logprob, Tokenizer tokenizer, IReadOnlyList<ChatToken>? top)
    {
        // The token's own bytes, not its text's: a byte-level token may end inside a UTF-8 character, and the client
        // joins the bytes of consecutive tokens to rebuild it (its text shows U+FFFD there).
        return new ChatToken(Text(id, tokenizer), logprob, tokenizer.TokenBytes(id).Select(b => (int)b).ToArray(), top);
    }

    /// <summary>Legacy logprobs; <paramref name="offset"/> is where the first token's text starts in the choice's text.</summary>
    public static Legacy ForCompletion(IReadOnlyList<GeneratedToken> tokens, int top, int offset, Tokenizer tokenizer)
    {
        var texts = tokens.Select(t => Text(t.TokenId, tokenizer)).ToList();
        var offsets = new List<int>();
        var at = offset;
        foreach (var s in texts)
        {
            offsets.Add(at);
            at += s.Length;
        }
        return new Legacy(
            texts,
            tokens.Select(t => t.Logprob).ToList(),
            tokens.Select(t => new Alternatives((t.Top ?? []).Take(top).Select(alt => (Text(alt.TokenId, tokenizer), alt.Logprob)).ToList())).ToList(),
            offsets);
    }

    static string Text(int id, Tokenizer tokenizer) => tokenizer.Decode([id]);
}
