using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

/// <summary>A small independent reader of TFRecord-framed event files for the tests: checks both CRCs of every record and decodes the protobuf fields the writer uses.</summary>
public static class EventFileReader
{
    /// <summary>The raw record payloads of <paramref name="path"/>, both checksums verified.</summary>
    public static List<byte[]> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var records = new List<byte[]>();
        int pos = 0;
        while (pos < bytes.Length)
        {
            Assert.True(bytes.Length - pos >= 12, "truncated record header");
            var lengthBytes = bytes.AsSpan(pos, 8);
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            uint lengthCrc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 8, 4));
            Assert.Equal(Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, lengthBytes), Unmask(lengthCrc));
            pos += 12;
            Assert.True((ulong)(bytes.Length - pos) >= length + 4, "truncated record");
            var data = bytes.AsSpan(pos, (int)length).ToArray();
            pos += (int)length;
            uint dataCrc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos, 4));
            Assert.Equal(Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data), Unmask(dataCrc));
            pos += 4;
            records.Add(data);
        }
        return records;
    }

    /// <summary>Reads and decodes every event of <paramref name="path"/>.</summary>
    public static List<DecodedEvent> ReadEvents(string path) => ReadRecords(path).Select(Decode).ToList();

    /// <summary>Undoes TFRecord's CRC mask (independent of the writer's code).</summary>
    public static uint Unmask(uint masked)
    {
        uint rot = unchecked(masked - 0xA282EAD8u);
        return (rot >> 17) | (rot << 15);
    }

    /// <summary>Decodes one Event message.</summary>
    public static DecodedEvent Decode(byte[] data)
    {
        double wall = 0;
        long step = 0;
        string? version = null;
        int? status = null;
        var scalars = new List<(string, float)>();
        foreach (var (field, wire, value, payload) in Fields(data))
        {
            switch (field)
            {
                case 1: Assert.Equal(1, wire); wall = BitConverter.Int64BitsToDouble((long)value); break;
                case 2: Assert.Equal(0, wire); step = (long)value; break;
                case 3: Assert.Equal(2, wire); version = Encoding.UTF8.GetString(payload!); break;
                case 5:
                    Assert.Equal(2, wire);
                    foreach (var (sf, sw, _, sp) in Fields(payload!))
                    {
                        Assert.Equal(1, sf);
                        Assert.Equal(2, sw);
                        string tag = "";
                        float v = float.NaN;
                        foreach (var (vf, vw, vv, vp) in Fields(sp!))
                        {
                            if (vf == 1) tag = Encoding.UTF8.GetString(vp!);
                            else if (vf == 2)
                            {
                                Assert.Equal(5, vw);
                                v = BitConverter.Int32BitsToSingle((int)vv);
                            }
                        }
                        scalars.Add((tag, v));
                    }
                    break;
                case 7: // session_log (TensorBoard's event.proto; 6 is the deprecated log_message)
                    Assert.Equal(2, wire);
                    foreach (var (lf, _, lv, _) in Fields(payload!))
                        if (lf == 1) status = (int)lv;
                    break;
                default: Assert.Fail($"unexpected Event field {field}"); break;
            }
        }
        return new DecodedEvent(wall, step, version, scalars, status);
    }

    private static List<(int Field, int Wire, ulong Value, byte[]? Payload)> Fields(byte[] data)
    {
        var result = new List<(int, int, ulong, byte[]?)>();
        int pos = 0;
        while (pos < data.Length)
        {
            ulong key = Varint(data, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: result.Add((field, wire, Varint(data, ref pos), null)); break;
                case 1: result.Add((field, wire, BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(pos, 8)), null)); pos += 8; break;
                case 5: result.Add((field, wire, BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(pos, 4)), null)); pos += 4; break;
                case 2:
                    int len = (int)Varint(data, ref pos);
                    result.Add((field, wire, 0, data.AsSpan(pos, len).ToArray()));
                    pos += len;
                    break;
                default: Assert.Fail($"wire type {wire}"); break;
            }
        }
        return result;
    }

    private static ulong Varint(byte[] data, ref int pos)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = data[pos++];
            v |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return v;
        }
    }
}
