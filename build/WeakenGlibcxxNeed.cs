// MSBuild inline task (RoslynCodeTaskFactory). Finds libLibTorchSharp.so under Folder and sets the
// VER_FLG_WEAK bit on its GLIBCXX_3.4.32 version need, when the system libstdc++ lacks that version
// (or always with Force). ELF64 little-endian layout facts: section headers at e_shoff (0x28), entry
// size at 0x3A, count at 0x3C; SHT_GNU_verneed = 0x6ffffffe, its sh_link names the string table and
// sh_info the number of Verneed entries. Verneed: vn_cnt@2, vn_aux@8, vn_next@12. Vernaux: vna_flags@4,
// vna_name@8, vna_next@12.
using System;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class OspreyWeakenGlibcxxNeed : Task
{
    [Required] public string Folder { get; set; } = "";
    public bool Force { get; set; }

    const string Needed = "GLIBCXX_3.4.32";

    public override bool Execute()
    {
        if (!Directory.Exists(Folder)) return true;
        var files = Directory.GetFiles(Folder, "libLibTorchSharp.so", SearchOption.AllDirectories);
        if (files.Length == 0) return true;
        if (!Force && SystemHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "libstdc++ provides " + Needed + "; libLibTorchSharp.so left as is.");
            return true;
        }
        foreach (var f in files)
        {
            var result = Patch(f);
            Log.LogMessage(MessageImportance.Normal, "osprey: " + f + ": " + result);
        }
        return !Log.HasLoggedErrors;
    }

    static bool SystemHasVersion()
    {
        string[] candidates = {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6" };
        var path = candidates.FirstOrDefault(File.Exists);
        if (path == null) return false;
        var bytes = File.ReadAllBytes(path);
        var pattern = Encoding.ASCII.GetBytes(Needed + "\0");
        for (int i = 0; i + pattern.Length <= bytes.Length; i++)
        {
            int j = 0;
            while (j < pattern.Length && bytes[i + j] == pattern[j]) j++;
            if (j == pattern.Length) return true;
        }
        return false;
    }

    string Patch(string path)
    {
        // Read, patch in memory, write to a temp file and rename: a half-written .so is never left behind.
        var b = File.ReadAllBytes(path);
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F' || b[4] != 2 || b[5] != 1)
        {
            Log.LogError(path + " is not a 64-bit little-endian ELF file.");
            return "error";
        }
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            uint type = BitConverter.ToUInt32(b, (int)sh + 4);
            if (type != 0x6ffffffe) continue;
            long off = BitConverter.ToInt64(b, (int)sh + 0x18);
            int link = BitConverter.ToInt32(b, (int)sh + 0x28);
            int count = BitConverter.ToInt32(b, (int)sh + 0x2C);
            long strOff = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
            long vn = off;
            for (int i = 0; i < count; i++)
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                for (int k = 0; k < cnt; k++)
                {
                    uint name = BitConverter.ToUInt32(b, (int)aux + 8);
                    if (ReadCString(b, strOff + name) == Needed)
                    {
                        int flagsAt = (int)aux + 4;
                        ushort flags = BitConverter.ToUInt16(b, flagsAt);
                        if ((flags & 2) != 0) return Needed + " already weak";
                        flags |= 2;
                        b[flagsAt] = (byte)(flags & 0xff);
                        b[flagsAt + 1] = (byte)(flags >> 8);
                        var tmp = path + ".osprey-tmp";
                        File.WriteAllBytes(tmp, b);
                        File.Replace(tmp, path, null);
                        return "marked " + Needed + " weak";
                    }
                    aux += BitConverter.ToUInt32(b, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(b, (int)vn + 12);
            }
        }
        return "no " + Needed + " need found";
    }

    static string ReadCString(byte[] b, long at)
    {
        int end = (int)at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
    }
}
