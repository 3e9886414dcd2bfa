namespace Osprey.Training.Reporting;

/// <summary>The CRC-32 of zlib and PNG (reflected polynomial 0xEDB88320), table-driven.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Crc32C.BuildTable(0xEDB88320u);

    /// <summary>Initial register value for incremental use.</summary>
    public const uint Start = 0xFFFFFFFFu;

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Update(Start, data));

    /// <summary>Feeds <paramref name="data"/> into the running register <paramref name="crc"/>.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    /// <summary>Turns a running register into the checksum.</summary>
    public static uint Finish(uint crc) => crc ^ 0xFFFFFFFFu;
}
