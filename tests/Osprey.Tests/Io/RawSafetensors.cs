using System.Buffers.Binary;
using System.Text;

namespace Osprey.Tests.Io;

/// <summary>Builds safetensors bytes by hand from the format description, independent of Osprey's writer.</summary>
internal static class RawSafetensors
{
    /// <summary>8-byte little-endian header length, the header's UTF-8 bytes, then the data.</summary>
    public static byte[] Build(string headerJson, byte[] data)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    /// <summary>The header JSON of a file on disk, with its declared length.</summary>
    public static (ulong Length, string Json) ReadHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return (length, Encoding.UTF8.GetString(bytes, 8, (int)length));
    }
}
