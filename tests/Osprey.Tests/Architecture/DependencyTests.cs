namespace Osprey.Tests.Architecture;

/// <summary>
/// The library's namespaces form layers: a namespace may use those of lower layers only, never one of its own layer
/// or above, so there are no cycles and each part can be understood (and tested) without what is built on it. Read
/// from the built Osprey.dll's IL (<see cref="NamespaceDependencies"/>), so a use hidden in a lambda, an async state
/// machine, a generic argument or an attribute counts as much as a field's type.
/// </summary>
public sealed class DependencyTests
{
    /// <summary>
    /// Lowest first. Each row may use every row above it. Where the issue's picture puts two namespaces side by side,
    /// the rows order them by what the code needs and forbids the other direction: Templates uses Tokenization,
    /// Datasets uses Hub, Serving uses Inference, and Training (and the future Evaluation, and Diagnostics) may use
    /// Inference and Serving. Namespaces of one row never use each other.
    /// </summary>
    private static readonly string[][] Layers =
    [
        [NamespaceDependencies.Root], // OspreyException
        ["Options"], // flag declarations every options record carries
        ["Runtime"],
        ["Distributed"], // ranks, rendezvous, NCCL and TCP collectives, the worker launcher
        ["Io"],
        ["Reporting"],
        ["Tokenization", "Images"],
        ["Templates"],
        ["Models"],
        ["Tuners", "Quantization", "Gguf"],
        ["Hub"],
        ["Datasets"],
        ["Inference"],
        ["Serving"],
        ["Training", "Evaluation", "Diagnostics"],
    ];


    private static string LibraryPath => typeof(OspreyException).Assembly.Location;

    [Fact]
    public void LibraryNamespaces_UseOnlyLowerLayers()
    {
        var layer = Layers.SelectMany((row, i) => row.Select(ns => (ns, i))).ToDictionary(x => x.ns, x => x.i);
        var edges = NamespaceDependencies.Read(LibraryPath).Edges;
        var unknown = edges.Keys.SelectMany(e => new[] { e.From, e.To }).Where(ns => !layer.ContainsKey(ns)).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.True(unknown.Count == 0, $"Namespaces with no layer in DependencyTests.Layers: {string.Join(", ", unknown)}; give each a row.");

        var offending = edges
            .Where(e => layer[e.Key.From] <= layer[e.Key.To])
            .OrderBy(e => e.Key.From, StringComparer.Ordinal).ThenBy(e => e.Key.To, StringComparer.Ordinal)
            .Select(e => $"  {e.Key.From} → {e.Key.To} (e.g. {e.Value})")
            .ToList();
        Assert.True(offending.Count == 0,
            "These namespaces use one of their own layer or above (see DependencyTests.Layers):\n" + string.Join("\n", offending));
    }

    [Fact]
    public void Library_DoesNotReferenceServerOrCli()
    {
        var references = NamespaceDependencies.AssemblyReferences(LibraryPath);
        Assert.DoesNotContain("Osprey.Server", references);
        Assert.DoesNotContain("Osprey.Cli", references);
    }

    [Fact]
    public void Server_DoesNotReferenceCli()
    {
        var server = Path.Combine(Path.GetDirectoryName(LibraryPath)!, "Osprey.Server.dll");
        Assert.DoesNotContain("Osprey.Cli", NamespaceDependencies.AssemblyReferences(server));
    }

    [Fact]
    public void Reader_FindsUsesHiddenInLambdasGenericsAndAttributes()
    {
        // Guards the reader itself: edges the library is known to have, one found only through a method body.
        var edges = NamespaceDependencies.Read(LibraryPath).Edges;
        Assert.Contains(("Datasets", "Hub"), edges.Keys);
        Assert.Contains(("Hub", "Reporting"), edges.Keys);
        Assert.Contains(("Templates", "Tokenization"), edges.Keys);
        Assert.DoesNotContain(edges.Keys, e => e.From == e.To);
    }
}
