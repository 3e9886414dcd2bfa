using System.Buffers.Binary;
using Osprey.Io;
using static TorchSharp.torch;

namespace Osprey.Tests.Io;

/// <summary>Reading files built by hand from the format description, and refusing damaged ones.</summary>
public sealed class SafetensorsFormatTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void ReadsAHandBuiltFile()
    {
        // Header entries out of data order, metadata last, header length not a multiple of 8: all allowed.
        var json = "{\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
            + "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[8,24]},"
            + "\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
            + "\"brain\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[28,30]},"
            + "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[30,33]},"
            + "\"__metadata__\":{\"format\":\"pt\",\"source\":\"hand\"}}";
        var data = new byte[33];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(0), 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -0.25f);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(8), 1L << 40);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(16), -3);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(24), 0x3C00); // 1.0 in IEEE half
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(26), 0xC000); // -2.0 in IEEE half
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(28), 0x4049); // 3.140625 in bfloat16
        data[30] = 1;
        data[32] = 1;
        var path = _temp.File("hand.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(json, data));

        using var scope = NewDisposeScope();
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["w", "ids", "half", "brain", "mask"], file.Entries.Select(entry => entry.Name));
        Assert.Equal("hand", file.Metadata["source"]);
        Assert.Equal([1.5f, -0.25f], file.ReadTensor("w").reshape(-1).data<float>().ToArray());
        Assert.Equal([1L << 40, -3L], file.ReadTensor("ids").data<long>().ToArray());
        Assert.Equal([1f, -2f], file.ReadTensor("half").to_type(ScalarType.Float32).data<float>().ToArray());
        var brain = file.ReadTensor("brain");
        Assert.Equal(ScalarType.BFloat16, brain.dtype);
        Assert.Equal(3.140625f, brain.to_type(ScalarType.Float32).item<float>());
        Assert.Equal([true, false, true], file.ReadTensor("mask").data<bool>().ToArray());
    }

    [Fact]
    public void ATruncatedFileIsRefusedNamingTheFile()
    {
        using var t = ones(64);
        var path = _temp.File("t.safetensors");
        SafetensorsWriter.Write(path, [new("w", t)]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void AFileShorterThanTheLengthFieldIsRefused(int length)
    {
        var path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AHeaderLengthBeyondTheFileIsRefused()
    {
        var bytes = RawSafetensors.Build("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        var path = _temp.File("t.safetensors");
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", "ends at data byte 16")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-4,4]}}", "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "needs 12 bytes")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "shape")]
    [InlineData("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", "too large")]
    public void BadOffsetsAndShapesAreRefused(string json, string problem)
    {
        var path = _temp.File("t.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(json, new byte[8]));

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",")]
    [InlineData("not json at all")]
    [InlineData("[1, 2]")]
    [InlineData("{\"__metadata__\":{\"format\":1}}")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}")]
    public void BadJsonIsRefused(string json)
    {
        var path = _temp.File("t.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(json, new byte[8]));

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidUtf8InTheHeaderIsRefused()
    {
        var bytes = RawSafetensors.Build("{\"wx\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", []);
        bytes[10] = 0xFF;
        var path = _temp.File("t.safetensors");
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("F8_E4M3", 2)]
    [InlineData("U32", 8)]
    [InlineData("Q4_K", 3)]
    public void UnsupportedDTypesOpenButCannotBeRead(string dtype, int byteLength)
    {
        var json = $"{{\"odd\":{{\"dtype\":\"{dtype}\",\"shape\":[2],\"data_offsets\":[0,{byteLength}]}},"
            + $"\"fine\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{byteLength},{byteLength + 1}]}}}}";
        var path = _temp.File("t.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(json, new byte[byteLength + 1]));

        using var file = SafetensorsFile.Open(path);
        using var fine = file.ReadTensor("fine");
        var error = Assert.Throws<OspreyFormatException>(() => file.ReadTensor("odd"));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("'odd'", error.Message, StringComparison.Ordinal);
        Assert.Contains(dtype, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingFileIsReportedAsSuch()
    {
        var path = _temp.File("absent.safetensors");

        var error = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ThePythonWrittenLlamaFixtureOpens()
    {
        var path = Path.Combine(TestPaths.Fixtures, "parity", "llama", "model.safetensors");

        using var file = SafetensorsFile.Open(path);
        var entry = file["model.embed_tokens.weight"];
        Assert.Equal("F32", entry.DType);
        Assert.Equal([256L, 64L], entry.Shape);
        Assert.Equal("pt", file.Metadata["format"]);
        using var embedding = file.ReadTensor("model.embed_tokens.weight");
        Assert.Equal(ScalarType.Float32, embedding.dtype);
        Assert.Equal([256L, 64L], embedding.shape);
        Assert.True(embedding.isfinite().all().item<bool>());
        Assert.True(embedding.abs().sum().item<float>() > 0);
    }
}
