using Osprey.Tokenization.Jinja;

namespace Osprey.Tests.Tokenization.Jinja;

public sealed class JinjaTemplateTests
{
    private static string Render(string source, Dictionary<string, object?>? variables = null) =>
        JinjaTemplate.Parse(source).Render(variables ?? []);

    [Fact]
    public void Accepts_plain_dotnet_values()
    {
        var messages = new List<Dictionary<string, object?>>
        {
            new() { ["role"] = "user", ["content"] = "hi", ["n"] = 3, ["x"] = 1.5f, ["ok"] = true, ["none"] = null },
        };
        var text = Render("{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.n + 1 }}:{{ m.x }}:{{ m.ok }}:{{ m.none }}{% endfor %}",
            new() { ["messages"] = messages });
        Assert.Equal("user:hi:4:1.5:True:None", text);
    }

    [Fact]
    public void Raise_exception_surfaces_the_template_message_exactly()
    {
        var e = Assert.Throws<JinjaException>(() => Render("{{ raise_exception('Only user and assistant roles are supported!') }}"));
        Assert.Equal("Only user and assistant roles are supported!", e.Message);
        Assert.IsAssignableFrom<OspreyException>(e);
    }

    [Fact]
    public void Syntax_errors_name_line_and_column()
    {
        var e = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}"));
        Assert.Contains("line 3, column 10", e.Message);
    }

    [Fact]
    public void Render_errors_name_the_line()
    {
        var template = JinjaTemplate.Parse("ok\n\n{{ 1 + 'a' }}");
        var e = Assert.Throws<JinjaException>(() => template.Render(new Dictionary<string, object?>()));
        Assert.Contains("line 3", e.Message);
        Assert.Contains("unsupported operand", e.Message);
    }

    [Fact]
    public void Unknown_tags_and_filters_are_errors()
    {
        Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("{% include 'x' %}"));
        Assert.Throws<JinjaException>(() => Render("{{ 1 | nosuchfilter }}"));
    }

    [Fact]
    public void Strftime_now_formats_the_current_date()
    {
        var text = Render("{{ strftime_now('%Y-%m-%d') }}");
        var now = DateTime.Now;
        Assert.Matches(@"^\d{4}-\d{2}-\d{2}$", text);
        Assert.StartsWith(now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), text);
    }

    [Fact]
    public void A_parsed_template_renders_many_times()
    {
        var template = JinjaTemplate.Parse("{{ name }}!");
        Assert.Equal("a!", template.Render(new Dictionary<string, object?> { ["name"] = "a" }));
        Assert.Equal("b!", template.Render(new Dictionary<string, object?> { ["name"] = "b" }));
    }

    [Fact]
    public void Runaway_macro_recursion_is_a_template_error()
    {
        var e = Assert.Throws<JinjaException>(() => Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"));
        Assert.Contains("recursed", e.Message);
    }

    [Fact]
    public void Integer_literals_beyond_64_bits_are_a_syntax_error()
    {
        var e = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("{{ 99999999999999999999999 }}"));
        Assert.Contains("line 1, column 4", e.Message);
    }

    [Fact]
    public void Json_elements_convert_on_entry()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""{"messages": [{"role": "user", "content": "hé", "n": 2, "x": 2.0, "ok": false, "none": null}]}""");
        var variables = new Dictionary<string, object?> { ["messages"] = doc.RootElement.GetProperty("messages") };
        var text = Render("{{ messages | tojson }}|{{ messages[0].n * 2 }}|{{ messages[0].x }}", variables);
        Assert.Equal("""[{"role": "user", "content": "hé", "n": 2, "x": 2.0, "ok": false, "none": null}]|4|2.0""", text);
    }

    [Fact]
    public void Integer_overflow_is_an_error_not_a_wrapped_value()
    {
        // Python's integers are unbounded; Osprey's are 64-bit, so it refuses rather than print a wrong number.
        var e = Assert.Throws<JinjaException>(() => Render("{{ 10 ** 30 }}"));
        Assert.Contains("line 1", e.Message);
    }
}
