using System.Text;

namespace Osprey.Tests.Build;

/// <summary>
/// The build marks libLibTorchSharp.so's GLIBCXX_3.4.32 version need as weak in the output copy (only where
/// the system libstdc++ lacks that version) and never touches the NuGet cache. Reads the ELF version-need
/// table directly.
/// </summary>
public sealed class GlibcxxWeakPatchTests
{
    const string Needed = "GLIBCXX_3.4.32";

    static string OutputCopy => Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");

    static string CacheCopy
    {
        get
        {
            var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        }
    }

    static bool SystemHasVersion()
    {
        foreach (var p in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" })
            if (File.Exists(p))
                return Encoding.ASCII.GetString(File.ReadAllBytes(p)).Contains(Needed + "\0", StringComparison.Ordinal);
        return false;
    }

    /// <summary>vna_flags of the Vernaux entry naming GLIBCXX_3.4.32, or null when there is none.</summary>
    static int? NeedFlags(string path)
    {
        var b = File.ReadAllBytes(path);
        long shoff = BitConverter.ToInt64(b, 0x28);
        int size = BitConverter.ToUInt16(b, 0x3A), count = BitConverter.ToUInt16(b, 0x3C);
        for (int s = 0; s < count; s++)
        {
            var sh = (int)(shoff + (long)s * size);
            if (BitConverter.ToUInt32(b, sh + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
            var off = (int)BitConverter.ToInt64(b, sh + 0x18);
            var strtab = (int)BitConverter.ToInt64(b, (int)(shoff + (long)BitConverter.ToInt32(b, sh + 0x28) * size) + 0x18);
            var vn = off;
            for (int i = 0; i < BitConverter.ToInt32(b, sh + 0x2C); i++)
            {
                var aux = vn + (int)BitConverter.ToUInt32(b, vn + 8);
                for (int k = 0; k < BitConverter.ToUInt16(b, vn + 2); k++)
                {
                    var nameAt = strtab + (int)BitConverter.ToUInt32(b, aux + 8);
                    var end = Array.IndexOf(b, (byte)0, nameAt);
                    if (Encoding.ASCII.GetString(b, nameAt, end - nameAt) == Needed) return BitConverter.ToUInt16(b, aux + 4);
                    aux += (int)BitConverter.ToUInt32(b, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(b, vn + 12);
            }
        }
        return null;
    }

    [Fact]
    public void NuGetCacheCopyIsUntouchedAndStillNeedsTheVersion()
    {
        Assert.True(File.Exists(CacheCopy), $"TorchSharp's native library not found at {CacheCopy}");
        var flags = NeedFlags(CacheCopy);
        Assert.NotNull(flags);
        Assert.Equal(0, flags!.Value & 2);
    }

    [Fact]
    public void OutputCopyIsWeakExactlyWhenTheSystemLacksTheVersion()
    {
        var flags = NeedFlags(OutputCopy);
        Assert.NotNull(flags);
        Assert.Equal(SystemHasVersion() ? 0 : 2, flags!.Value & 2);
        // Only that one bit differs from the package's file.
        var a = File.ReadAllBytes(OutputCopy);
        var c = File.ReadAllBytes(CacheCopy);
        Assert.Equal(c.Length, a.Length);
        Assert.True(a.Zip(c).Count(p => p.First != p.Second) <= 1);
    }
}
