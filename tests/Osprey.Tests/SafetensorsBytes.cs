using Osprey.Io;

namespace Osprey.Tests;

/// <summary>Raw bytes of chosen tensors in a safetensors file, for tests that assert frozen weights stay bit-identical.</summary>
public static class SafetensorsBytes
{
    /// <summary>Each tensor of <paramref name="file"/> whose name <paramref name="which"/> accepts, as its contiguous bytes.</summary>
    public static Dictionary<string, byte[]> Read(string file, Func<string, bool> which)
    {
        using var f = SafetensorsFile.Open(file);
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var e in f.Entries.Where(e => which(e.Name)))
        {
            using var t = f.ReadTensor(e.Name);
            result[e.Name] = t.contiguous().bytes.ToArray();
        }
        return result;
    }
}
