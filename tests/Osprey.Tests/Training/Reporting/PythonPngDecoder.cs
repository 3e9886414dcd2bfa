using System.Diagnostics;

namespace Osprey.Tests.Training.Reporting;

/// <summary>
/// Decodes a PNG with python3's standard library (struct + zlib), independent of the library that wrote it:
/// checks the signature, every chunk's CRC-32, IHDR (8-bit RGB or RGBA, not interlaced), the IEND at the
/// end, undoes the five row filters of the PNG specification (section 9) and returns the pixels as RGB
/// (an RGBA image must be opaque). Batches several files in one python3 start to keep the tests quick.
/// </summary>
public static class PythonPngDecoder
{
    private const string Script = """
        import struct, sys, zlib
        def paeth(a, b, c):
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            return a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        def decode(src, dst):
            data = open(src, 'rb').read()
            assert data[:8] == b'\x89PNG\r\n\x1a\n', 'PNG signature'
            pos, types, idat, ihdr = 8, [], b'', None
            while pos < len(data):
                (n,) = struct.unpack('>I', data[pos:pos + 4])
                kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
                (crc,) = struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])
                assert zlib.crc32(kind + body) == crc, 'CRC of chunk ' + kind.decode()
                types.append(kind.decode())
                if kind == b'IHDR': ihdr = struct.unpack('>IIBBBBB', body)
                if kind == b'IDAT': idat += body
                pos += 12 + n
            assert pos == len(data) and types[0] == 'IHDR' and types[-1] == 'IEND', types
            w, h, depth, color, comp, filt, interlace = ihdr
            assert depth == 8 and color in (2, 6) and comp == 0 and filt == 0 and interlace == 0, ihdr
            bpp = 3 if color == 2 else 4
            raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), bytearray()
            assert len(raw) == h * (stride + 1), 'IDAT size'
            for y in range(h):
                f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
                assert f <= 4, 'filter type %d in row %d' % (f, y)
                if f == 2:  # Up, the common case, without the per-byte branch
                    row = bytearray((x + b) & 255 for x, b in zip(row, prev))
                elif f != 0:
                    for i in range(stride):
                        a = row[i - bpp] if i >= bpp else 0
                        b = prev[i]
                        c = prev[i - bpp] if i >= bpp else 0
                        row[i] = (row[i] + (0, a, b, (a + b) // 2, paeth(a, b, c))[f]) & 255
                if bpp == 4:
                    assert row[3::4].count(255) == w, 'transparent pixel in row %d' % y
                    rgb = bytearray(w * 3)
                    rgb[0::3], rgb[1::3], rgb[2::3] = row[0::4], row[1::4], row[2::4]
                    out += rgb
                else:
                    out += row
                prev = row
            open(dst, 'wb').write(bytes(out))
            print(w, h, ','.join(types))
        for i in range(1, len(sys.argv), 2): decode(sys.argv[i], sys.argv[i + 1])
        """;

    /// <summary>Decodes one file.</summary>
    public static DecodedPng Decode(string path) => DecodeAll([path])[0];

    /// <summary>Decodes several files with one python3 process.</summary>
    public static IReadOnlyList<DecodedPng> DecodeAll(IReadOnlyList<string> paths)
    {
        using var dir = new TempDirectory();
        var script = dir.File("decode_png.py");
        File.WriteAllText(script, Script);
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        for (int i = 0; i < paths.Count; i++)
        {
            psi.ArgumentList.Add(paths[i]);
            psi.ArgumentList.Add(dir.File($"{i}.rgb"));
        }
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"python3 is not on PATH ({e.Message}); the plot tests decode PNGs with it (.ci/run installs it).", e);
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"python3 could not decode the PNG: {stderr.Result}");
            var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(paths.Count, lines.Length);
            return lines.Select((line, i) =>
            {
                var parts = line.Split(' ');
                return new DecodedPng(int.Parse(parts[0]), int.Parse(parts[1]), File.ReadAllBytes(dir.File($"{i}.rgb")), parts[2].Split(','));
            }).ToList();
        }
    }
}
