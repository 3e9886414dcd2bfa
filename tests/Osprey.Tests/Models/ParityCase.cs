using System.Text.Json;
using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// One reference model written by tools/make_parity_fixtures.py: the model folder plus what transformers
/// computed for it (golden.safetensors tensors and golden.json numbers).
/// </summary>
public sealed class ParityCase
{
    /// <summary>The model folder.</summary>
    public string Directory { get; }

    /// <summary>Family name (folder name).</summary>
    public string Name { get; }

    /// <summary>golden.json.</summary>
    public JsonElement Golden { get; }

    ParityCase(string dir)
    {
        Directory = dir;
        Name = System.IO.Path.GetFileName(dir);
        Golden = JsonDocument.Parse(File.ReadAllBytes(System.IO.Path.Combine(dir, "golden.json"))).RootElement;
    }

    /// <summary>A tensor from golden.safetensors.</summary>
    public Tensor Tensor(string name)
    {
        using var f = SafetensorsFile.Open(System.IO.Path.Combine(Directory, "golden.safetensors"));
        return f.ReadTensor(name);
    }

    /// <summary>A list of int lists from golden.json.</summary>
    public IReadOnlyList<IReadOnlyList<int>> IntLists(string name) =>
        Golden.GetProperty(name).EnumerateArray().Select(a => (IReadOnlyList<int>)a.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();

    /// <summary>
    /// The committed fixtures (tests/fixtures/parity) plus, when OSPREY_PARITY_DIR is set, the families in
    /// that folder — for acceptance runs on models of other shapes and seeds.
    /// </summary>
    public static IEnumerable<string> Folders()
    {
        var roots = new List<string> { System.IO.Path.Combine(TestPaths.Fixtures, "parity") };
        var extra = Environment.GetEnvironmentVariable("OSPREY_PARITY_DIR");
        if (!string.IsNullOrEmpty(extra)) roots.Add(extra);
        foreach (var root in roots)
            foreach (var dir in System.IO.Directory.GetDirectories(root).Order(StringComparer.Ordinal))
                if (File.Exists(System.IO.Path.Combine(dir, "golden.json"))) yield return dir;
    }

    /// <summary>Loads a case.</summary>
    public static ParityCase Load(string dir) => new(dir);
}
