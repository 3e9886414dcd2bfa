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
}
