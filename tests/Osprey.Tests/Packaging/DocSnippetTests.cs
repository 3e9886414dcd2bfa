using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Osprey.Tests.Packaging;

/// <summary>
/// Every ```csharp block of README.md and docs/*.md compiles as the Program.cs of a console app (top-level statements,
/// the implicit usings of `dotnet new console`, nullable on) that references the Osprey, Osprey.Server, OpenAI and
/// Microsoft.Extensions.AI assemblies, with the C# compiler itself (Roslyn) as the judge. A snippet that is a fragment of
/// a larger program says so on a visible line, <c>// given: Type name; Type name2</c>, and those variables are declared
/// for it; everything else it uses must be declared or imported by the snippet itself, as a reader would copy it.
/// </summary>
public sealed partial class DocSnippetTests
{
    /// <summary>What `dotnet new console` imports implicitly (ImplicitUsings for Microsoft.NET.Sdk).</summary>
    static readonly string[] ImplicitUsings =
        ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"];

    static readonly Lazy<MetadataReference[]> s_references = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray());

    [GeneratedRegex(@"^\s*using\s+(static\s+)?[A-Za-z_][\w.]*(\s*=\s*[\w.<>, ]+)?\s*;\s*(//.*)?$")]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"^\s*//\s*given:\s*(.+)$")]
    private static partial Regex GivenLine();

    /// <summary>Each snippet as (markdown file relative to the repository, line of its opening fence).</summary>
    public static TheoryData<string, int> Snippets()
    {
        var data = new TheoryData<string, int>();
        foreach (var (file, line, _) in Extract()) data.Add(file, line);
        return data;
    }

    static IEnumerable<(string File, int Line, string[] Body)> Extract()
    {
        var files = new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "docs"), "*.md")
            .Select(f => Path.GetRelativePath(TestPaths.RepoRoot, f)).Order(StringComparer.Ordinal));
        foreach (var file in files)
        {
            var lines = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, file));
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].TrimEnd() != "```csharp") continue;
                int end = i + 1;
                while (end < lines.Length && !lines[end].StartsWith("```", StringComparison.Ordinal)) end++;
                yield return (file, i + 1, lines[(i + 1)..end]);
                i = end;
            }
        }
    }

    [Fact]
    public void TheDocsHaveCSharpSnippets()
    {
        // Guards the extraction itself: README and docs/ hold a dozen snippets today.
        Assert.True(Extract().Count() >= 10, "fewer than 10 ```csharp blocks found in README.md and docs/*.md");
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void SnippetCompiles(string file, int fenceLine)
    {
        var body = Extract().Single(s => s.File == file && s.Line == fenceLine).Body;
        var source = new StringBuilder();
        foreach (var u in ImplicitUsings) source.Append("global using ").Append(u).Append(";\n");
        // Leading using directives stay directives; the rest becomes top-level statements. #line maps every compiler
        // message back to the markdown file's own line.
        int first = 0;
        while (first < body.Length && (string.IsNullOrWhiteSpace(body[first]) || UsingDirective().IsMatch(body[first]) || GivenLine().IsMatch(body[first])))
            first++;
        var directives = new StringBuilder();
        var givens = new StringBuilder();
        for (int k = 0; k < first; k++)
        {
            directives.Append($"#line {fenceLine + 1 + k} \"{file}\"\n");
            var given = GivenLine().Match(body[k]);
            if (given.Success)
                foreach (var declaration in given.Groups[1].Value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    givens.Append(declaration).Append(" = default!;\n");
            else
                directives.Append(body[k]).Append('\n');
        }
        source.Append(directives).Append("#line hidden\n").Append(givens);
        source.Append($"#line {fenceLine + 1 + first} \"{file}\"\n");
        foreach (var line in body[first..]) source.Append(line).Append('\n');

        var tree = CSharpSyntaxTree.ParseText(source.ToString(), new CSharpParseOptions(LanguageVersion.Latest), path: file);
        var compilation = CSharpCompilation.Create("Snippet", [tree], s_references.Value,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()).ToArray();
        Assert.True(errors.Length == 0,
            $"The C# snippet at {file}:{fenceLine} does not compile; fix the snippet (or, for a deliberate fragment, declare its inputs on a `// given: Type name; Type name2` line):\n"
            + string.Join('\n', errors));
    }
}
