using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Tokenization;
using Osprey.Tokenization;

namespace Osprey.Tests.Serving;

/// <summary>
/// <see cref="StopMatcher"/>: incremental decoding gives exactly the full decode on real tokenizers (byte-level
/// BPE and SentencePiece, multi-byte characters split across tokens), and stop strings cut the text before them
/// even when they span tokens, with nothing handed out that has to be taken back.
/// </summary>
public sealed class StopMatcherTests
{
    const string Sample = "Hello, world! Ünïcödé — 你好，世界 🐦‍⬛ emoji and  double  spaces.\nNew line, tabs\tand \"quotes\" don't break it.";

    public static TheoryData<string> Tokenizers() => new() { "qwen3", "llama3_1", "gemma3", "llama2" };

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void IncrementsAddUpToTheFullDecode(string name)
    {
        var tokenizer = Tokenizer.Load(NpmTokenizers.Folder(name));
        var ids = tokenizer.EncodeIds(Sample, addSpecialTokens: false);
        var matcher = new StopMatcher(t => tokenizer.Decode(t, skipSpecialTokens: true), []);
        var text = string.Concat(ids.Select(matcher.Add)) + matcher.Finish();
        Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), text);
        Assert.DoesNotContain('\uFFFD', text);
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void StopsBeforeAStopStringThatSpansTokens(string name)
    {
        var tokenizer = Tokenizer.Load(NpmTokenizers.Folder(name));
        var ids = tokenizer.EncodeIds(Sample, addSpecialTokens: false);
        var full = tokenizer.Decode(ids, skipSpecialTokens: true);
        var matcher = new StopMatcher(t => tokenizer.Decode(t, skipSpecialTokens: true), ["世界", "zzz"]);
        var handed = "";
        var used = 0;
        foreach (var id in ids)
        {
            handed += matcher.Add(id);
            used++;
            // Nothing handed out may run past where the stop string begins.
            Assert.StartsWith(handed, full[..full.IndexOf("世界", StringComparison.Ordinal)] + "世界");
            Assert.DoesNotContain("世界", handed);
            if (matcher.Stopped is not null) break;
        }
        handed += matcher.Finish();
        Assert.Equal("世界", matcher.Stopped);
        Assert.Equal(full[..full.IndexOf("世界", StringComparison.Ordinal)], handed);
        Assert.True(used < ids.Length);
    }

    [Fact]
    public void HoldsBackAPossibleStartUntilItIsRuledOut()
    {
        // One character per id, so the steps are easy to follow.
        var matcher = new StopMatcher(t => new string(t.Select(i => (char)i).ToArray()), ["END"]);
        Assert.Equal("a", matcher.Add('a'));
        Assert.Equal("", matcher.Add('E'));  // could be "END"
        Assert.Equal("", matcher.Add('N'));
        Assert.Equal("ENx", matcher.Add('x')); // ruled out: released at once
        Assert.Equal("", matcher.Add('E'));
        Assert.Equal("E", matcher.Finish());  // the output ended: a held-back start is released
        Assert.Null(matcher.Stopped);
        Assert.Equal("aENxE", matcher.Text);
    }

    [Theory]
    [InlineData("qwen3")]  // byte-level BPE: an incomplete character decodes as one U+FFFD
    [InlineData("llama2")] // SentencePiece byte fallback: one U+FFFD per byte
    public void BytesThatAreNotUtf8AreHandedOutAsTheyComeWithoutRedecodingTheRun(string name)
    {
        // Single-byte tokens spell runs a random-weight model writes: a thousand continuation bytes with no
        // character open, lead bytes that never complete, and real characters split byte by byte between them.
        var tokenizer = Tokenizer.Load(NpmTokenizers.Folder(name));
        var byteToken = new Dictionary<byte, int>();
        for (var id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.TokenBytes(id) is [var b] && !byteToken.ContainsKey(b)) byteToken[b] = id;
        int[] Bytes(params byte[] bytes) => [.. bytes.Select(b => byteToken[b])];
        var text = tokenizer.EncodeIds("ab", addSpecialTokens: false);
        int[] ids =
        [
            .. text, .. Bytes([.. Enumerable.Repeat((byte)0x80, 1000)]), .. tokenizer.EncodeIds("c 你好", addSpecialTokens: false),
            .. Bytes(0xF0, 0x9F, 0x98, 0x80), .. Bytes([.. Enumerable.Repeat((byte)0xE2, 50)]), .. Bytes(0xE2, 0x82, 0xAC),
            .. Bytes(0xF0, 0x9F), .. text, .. Bytes(0xED, 0xA0, 0x80), .. Bytes(0xC3),
        ];
        var decoded = 0L;
        string Decode(IReadOnlyList<int> t)
        {
            decoded += t.Count;
            return tokenizer.Decode(t, skipSpecialTokens: true);
        }
        var matcher = new StopMatcher(Decode, []);
        var handed = new List<string>();
        foreach (var id in ids) handed.Add(matcher.Add(id));
        var all = string.Concat(handed) + matcher.Finish();
        // A byte-level decode is local: the increments add up to the whole reply's decode. A byte-fallback decode
        // (transformers' and the Rust tokenizers' rule) turns every byte of a run of byte tokens into U+FFFD once any of
        // them is not UTF-8, so the whole reply's decode loses the run's valid characters too; increments, like any
        // streamer's, see the run a window at a time (the rest of the text is the same).
        static string Plain(string t) => new([.. t.Where(c => c < 0x80 || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.OtherLetter)]);
        if (name == "qwen3")
        {
            Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), all);
            Assert.Contains("\U0001F600\uFFFD", all); // 😀, written byte by byte, then the first lone E2
            Assert.Contains("€", all);
        }
        else Assert.Equal(Plain(tokenizer.Decode(ids, skipSpecialTokens: true)), Plain(all));
        Assert.Contains("\uFFFD\uFFFD", all);
        // The run's text goes out while it is written (not all at its end), and each token decodes a bounded number
        // of tokens, not the run so far (re-decoding the 1000-byte run whole at every token would be about half a million).
        Assert.True(handed.Skip(text.Length).Take(1000).Count(d => d.Length > 0) > 950);
        Assert.InRange(decoded, ids.Length, 60L * ids.Length);
    }

    [Fact]
    public void RandomTokensAddUpToTheFullDecodeWithAndWithoutStops()
    {
        var tokenizer = Tokenizer.Load(NpmTokenizers.Folder("qwen3"));
        var rng = new Random(11);
        var ids = Enumerable.Range(0, 3000).Select(_ => rng.Next(0, 151643)).ToArray();
        var full = tokenizer.Decode(ids, skipSpecialTokens: true);
        var plain = new StopMatcher(t => tokenizer.Decode(t, skipSpecialTokens: true), []);
        Assert.Equal(full, string.Concat(ids.Select(plain.Add)) + plain.Finish());
        // A stop string taken from the middle of the text: the reply ends right before its first occurrence.
        var stop = full.Substring(full.Length / 2, 3);
        var stopping = new StopMatcher(t => tokenizer.Decode(t, skipSpecialTokens: true), ["\u0001never", stop]);
        var handed = "";
        foreach (var id in ids)
        {
            handed += stopping.Add(id);
            if (stopping.Stopped is not null) break;
        }
        handed += stopping.Finish();
        Assert.Equal(stop, stopping.Stopped);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], handed);
    }
}
