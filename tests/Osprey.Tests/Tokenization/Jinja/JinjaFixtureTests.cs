using System.Text.Json;
using Osprey.Tokenization.Jinja;

namespace Osprey.Tests.Tokenization.Jinja;

/// <summary>
/// Every case in tests/fixtures/jinja/cases.json must render exactly as jinja2 rendered it with transformers'
/// chat-template environment (tools/make_jinja_fixtures.py wrote expected.json).
/// </summary>
public sealed class JinjaFixtureTests
{
    private static readonly Lazy<Dictionary<string, JsonElement>> s_cases = new(() => Load("cases.json")
        .EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c));

    private static readonly Lazy<Dictionary<string, JsonElement>> s_expected = new(() => Load("expected.json")
        .EnumerateObject().ToDictionary(p => p.Name, p => p.Value));

    private static JsonElement Load(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "jinja", file))).RootElement;

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in s_cases.Value.Keys) data.Add(name);
        return data;
    }

    [Fact]
    public void Fixtures_cover_every_case()
    {
        Assert.True(s_cases.Value.Count >= 150);
        Assert.Equal(s_cases.Value.Keys.Order(), s_expected.Value.Keys.Order());
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Renders_like_jinja2(string name)
    {
        var c = s_cases.Value[name];
        var expected = s_expected.Value[name];
        var variables = c.GetProperty("variables").EnumerateObject()
            .ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        var source = c.GetProperty("template").GetString()!;

        if (expected.TryGetProperty("output", out var output))
        {
            Assert.Equal(output.GetString(), JinjaTemplate.Parse(source).Render(variables));
            return;
        }
        var error = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse(source).Render(variables));
        if (expected.GetProperty("raised").GetBoolean())
        {
            Assert.Equal(expected.GetProperty("error").GetString(), error.Message);
        }
        else
        {
            Assert.Matches(@"line \d+, column \d+", error.Message);
        }
    }
}
