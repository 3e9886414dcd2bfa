using System.Security.Cryptography;
using System.Text;

namespace Osprey.Runtime;

/// <summary>
/// Compiled kernel images kept on disk, one file per source, options and GPU architecture, so NVRTC runs once per
/// machine rather than once per process (compiling the fused kernels takes seconds). The folder is
/// <c>OSPREY_KERNEL_CACHE</c>, else <c>$XDG_CACHE_HOME/osprey/kernels</c>, else <c>~/.cache/osprey/kernels</c>; a folder
/// that cannot be written only costs the compile. The key hashes the source and the options, so an edited kernel never
/// loads a stale image; the architecture is in the name because a cubin runs on exactly one.
/// </summary>
internal static class KernelCache
{
    /// <summary>The folder images are kept in.</summary>
    public static string Folder
    {
        get
        {
            var explicitFolder = Environment.GetEnvironmentVariable("OSPREY_KERNEL_CACHE");
            if (!string.IsNullOrEmpty(explicitFolder)) return explicitFolder;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "osprey", "kernels");
        }
    }

    /// <summary>The file name an image of <paramref name="source"/> compiled with <paramref name="options"/> for sm_XY has.</summary>
    public static string FileName(string name, string source, int major, int minor, IReadOnlyList<string> options)
    {
        var key = SHA256.HashData(Encoding.UTF8.GetBytes(source + "\n" + string.Join("\n", options)));
        return $"{name}-sm{major}{minor}-{Convert.ToHexStringLower(key)[..16]}.cubin";
    }

    /// <summary>The cubin for sm_<paramref name="major"/><paramref name="minor"/>, from disk when an earlier process compiled it.</summary>
    public static byte[] CompileCubin(string source, string name, int major, int minor, IReadOnlyList<string> options)
    {
        var path = Path.Combine(Folder, FileName(name, source, major, minor, options));
        try
        {
            if (File.Exists(path)) return File.ReadAllBytes(path);
        }
        catch (IOException) { } // unreadable: compile again
        catch (UnauthorizedAccessException) { }
        var cubin = Nvrtc.CompileCubin(source, name + ".cu", major, minor, options);
        try
        {
            Directory.CreateDirectory(Folder);
            var temp = path + "." + Environment.ProcessId + ".tmp";
            File.WriteAllBytes(temp, cubin);
            File.Move(temp, path, overwrite: true); // another process may have written the same bytes meanwhile
        }
        catch (IOException) { } // a read-only or full cache costs only the next compile
        catch (UnauthorizedAccessException) { }
        return cubin;
    }
}
