using System.Text;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

public sealed class ChecksumTests
{
    private static readonly byte[] Check = Encoding.ASCII.GetBytes("123456789");

    [Fact]
    public void Crc32C_MatchesCheckValue() => Assert.Equal(0xE3069283u, Crc32C.Compute(Check));

    [Fact]
    public void EmptyInput_IsZero()
    {
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    [Fact]
    public void Crc32C_KnownVectors()
    {
        // RFC 3720 (iSCSI) test vectors: 32 bytes of zeros, of 0xFF, and ascending 0..31.
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
    }

    [Fact]
    public void Mask_RotatesAndOffsets()
    {
        Assert.Equal(0xA282EAD8u, Crc32C.Mask(0));
        // 0xE3069283 rotated right by 15 is 0x2507C60D; plus 0xA282EAD8 is 0xC78AB0E5.
        Assert.Equal(0xC78AB0E5u, Crc32C.Mask(0xE3069283u));
        Assert.Equal(0xE3069283u, EventFileReader.Unmask(Crc32C.Masked(Check)));
    }
}
