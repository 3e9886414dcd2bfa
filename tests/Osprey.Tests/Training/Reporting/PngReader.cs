using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

/// <summary>A strict little PNG reader for the tests: signature, chunk CRCs, IHDR, zlib IDAT, filter-0 rows.</summary>
public static class PngReader
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Decodes <paramref name="path"/>.</summary>
    public static DecodedPng Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(Signature, bytes[..8]);
        int pos = 8;
        int width = 0, height = 0;
        var idat = new MemoryStream();
        var types = new List<string>();
        while (pos < bytes.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(pos));
            var type = Encoding.ASCII.GetString(bytes, pos + 4, 4);
            var typeAndData = bytes.AsSpan(pos + 4, 4 + len);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(pos + 8 + len));
            Assert.Equal(Crc32.Compute(typeAndData), crc);
            var data = bytes.AsSpan(pos + 8, len);
            types.Add(type);
            if (type == "IHDR")
            {
                Assert.Equal(13, len);
                width = (int)BinaryPrimitives.ReadUInt32BigEndian(data);
                height = (int)BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
                Assert.Equal(8, data[8]);
                Assert.Equal(2, data[9]);
                Assert.Equal(0, data[10]);
                Assert.Equal(0, data[11]);
                Assert.Equal(0, data[12]);
            }
            else if (type == "IDAT")
            {
                idat.Write(data);
            }
            pos += 12 + len;
        }
        Assert.Equal(pos, bytes.Length);
        Assert.Equal("IHDR", types[0]);
        Assert.Equal("IEND", types[^1]);
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        var rows = raw.ToArray();
        int stride = width * 3;
        Assert.Equal(height * (stride + 1), rows.Length);
        var pixels = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            Assert.Equal(0, rows[y * (stride + 1)]);
            Array.Copy(rows, y * (stride + 1) + 1, pixels, y * stride, stride);
        }
        return new DecodedPng(width, height, pixels, types);
    }
}
