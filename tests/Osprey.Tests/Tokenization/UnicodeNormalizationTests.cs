using System.Text.Json;
using Osprey.Tokenization;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// Osprey's embedded-table normalization against Python's unicodedata (tests/fixtures/tokenizers/unicode_normalization.json,
/// written by tools/make_unicode_tables.py from the same Unicode version as the tables).
/// </summary>
public sealed class UnicodeNormalizationTests
{
    private static readonly Lazy<JsonElement> s_fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "tokenizers", "unicode_normalization.json"))).RootElement);

    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < s_fixture.Value.GetProperty("cases").GetArrayLength(); i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void All_four_forms_match_python(int index)
    {
        Assert.Equal(s_fixture.Value.GetProperty("unicode").GetString(), UnicodeNormalization.UnicodeVersion);
        var c = s_fixture.Value.GetProperty("cases")[index];
        var text = c.GetProperty("text").GetString()!;
        foreach (var (name, form) in new[] { ("NFC", NormForm.C), ("NFD", NormForm.D), ("NFKC", NormForm.KC), ("NFKD", NormForm.KD) })
        {
            var expected = c.GetProperty(name).GetString()!;
            var actual = UnicodeNormalization.Normalize(text, form);
            Assert.True(expected == actual, $"{name}({Escape(text)}): python {Escape(expected)}, Osprey {Escape(actual)}");
            // The normalizer stage (chunked, with alignments) gives the same text as normalizing in one go.
            var staged = new UnicodeNormalizer(form).Normalize(new NormalizedText(text, 0));
            Assert.True(expected == staged.Text, $"{name} staged({Escape(text)}): python {Escape(expected)}, Osprey {Escape(staged.Text)}");
            Assert.Equal(staged.Text.Length, Enumerable.Range(0, staged.Length).Count(i => staged.OriginalStart(i) <= staged.OriginalEnd(i)));
        }
    }

    private static string Escape(string s) => string.Concat(s.Select(ch => ch < 128 ? ch.ToString() : $"\\u{(int)ch:x4}"));
}
