using System.Text.Json;
using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Io;

public sealed class SafetensorsRoundTripTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<ScalarType, string> DTypes => new()
    {
        { ScalarType.Float64, "F64" },
        { ScalarType.Float32, "F32" },
        { ScalarType.Float16, "F16" },
        { ScalarType.BFloat16, "BF16" },
        { ScalarType.Int64, "I64" },
        { ScalarType.Int32, "I32" },
        { ScalarType.Int16, "I16" },
        { ScalarType.Int8, "I8" },
        { ScalarType.Byte, "U8" },
        { ScalarType.Bool, "BOOL" },
    };

    [Theory]
    [MemberData(nameof(DTypes))]
    public void EachDTypeRoundTripsBitExact(ScalarType dtype, string safetensorsName)
    {
        using var original = RandomTensor([3, 5], dtype, seed: (int)dtype);
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, [new("w", original)]);

        using var file = SafetensorsFile.Open(path);
        var entry = file["w"];
        Assert.Equal(safetensorsName, entry.DType);
        Assert.Equal([3L, 5L], entry.Shape);
        Assert.Equal(15 * original.element_size(), entry.End - entry.Begin);
        using var read = file.ReadTensor("w");
        Assert.Equal(dtype, read.dtype);
        Assert.Equal([3L, 5L], read.shape);
        Assert.Equal(DeviceType.CPU, read.device_type);
        Assert.True(read.is_contiguous());
        Assert.Equal(original.bytes.ToArray(), read.bytes.ToArray());
    }

    [Fact]
    public void ScalarAndEmptyTensorsRoundTrip()
    {
        using var scalar = tensor(3.5f);
        using var empty = torch.empty([0, 4], ScalarType.BFloat16);
        using var emptyVector = torch.empty([0], ScalarType.Int64);
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, [new("scalar", scalar), new("empty", empty), new("empty_vector", emptyVector)]);

        using var file = SafetensorsFile.Open(path);
        Assert.Empty(file["scalar"].Shape);
        Assert.Equal([0L, 4L], file["empty"].Shape);
        Assert.Equal(file["empty"].Begin, file["empty"].End);
        using var readScalar = file.ReadTensor("scalar");
        Assert.Equal(0, readScalar.dim());
        Assert.Equal(3.5f, readScalar.item<float>());
        using var readEmpty = file.ReadTensor("empty");
        Assert.Equal([0L, 4L], readEmpty.shape);
        Assert.Equal(ScalarType.BFloat16, readEmpty.dtype);
        using var readEmptyVector = file.ReadTensor("empty_vector");
        Assert.Equal([0L], readEmptyVector.shape);
    }

    [Fact]
    public void MetadataIsWrittenFirstAndReadBack()
    {
        using var t = ones(2);
        var custom = _temp.File("custom.safetensors");
        var defaulted = _temp.File("default.safetensors");
        var none = _temp.File("none.safetensors");

        SafetensorsWriter.Write(custom, [new("w", t)], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é \"quoted\"" });
        SafetensorsWriter.Write(defaulted, [new("w", t)]);
        SafetensorsWriter.Write(none, [new("w", t)], new Dictionary<string, string>());

        using (var file = SafetensorsFile.Open(custom))
        {
            Assert.Equal("é \"quoted\"", file.Metadata["note"]);
            Assert.Equal("pt", file.Metadata["format"]);
        }
        Assert.StartsWith("{\"__metadata__\":", RawSafetensors.ReadHeader(custom).Json, StringComparison.Ordinal);
        using (var file = SafetensorsFile.Open(defaulted))
        {
            Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, file.Metadata);
        }
        using (var file = SafetensorsFile.Open(none))
        {
            Assert.Empty(file.Metadata);
        }
        Assert.DoesNotContain("__metadata__", RawSafetensors.ReadHeader(none).Json, StringComparison.Ordinal);
    }

    [Fact]
    public void HeaderIsPaddedWithSpacesToAMultipleOfEight()
    {
        using var t = ones(1);
        for (var nameLength = 1; nameLength <= 9; nameLength++)
        {
            var path = _temp.File($"t{nameLength}.safetensors");
            SafetensorsWriter.Write(path, [new(new string('n', nameLength), t)]);

            var (length, json) = RawSafetensors.ReadHeader(path);
            Assert.Equal(0UL, (8 + length) % 8);
            var unpadded = json.TrimEnd(' ');
            Assert.EndsWith("}", unpadded, StringComparison.Ordinal);
            Assert.InRange(json.Length - unpadded.Length, 0, 7);
            using var document = JsonDocument.Parse(json);
            Assert.Equal(8 + (long)length + 4, new FileInfo(path).Length);
        }
    }

    [Fact]
    public void WriterOutputMatchesTheFormatByteForByte()
    {
        using var x = tensor(new float[] { 1f, -2f });
        using var y = tensor(new short[] { 7 });
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, [new("x", x), new("y", y)]);

        var json = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"y\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[8,10]}}";
        json += new string(' ', (8 - json.Length % 8) % 8);
        byte[] data = [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0x07, 0x00];
        Assert.Equal(RawSafetensors.Build(json, data), File.ReadAllBytes(path));
    }

    [Fact]
    public void NonContiguousAndGradTensorsAreWrittenInLogicalOrder()
    {
        using var scope = NewDisposeScope();
        var matrix = arange(6, ScalarType.Float32).reshape(2, 3);
        var transposed = matrix.t();
        var parameter = ones(2, 2).requires_grad_();
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, [new("t", transposed), new("p", parameter)]);

        using var file = SafetensorsFile.Open(path);
        var read = file.ReadTensor("t");
        Assert.Equal([3L, 2L], read.shape);
        Assert.Equal(transposed.contiguous().data<float>().ToArray(), read.data<float>().ToArray());
        Assert.False(file.ReadTensor("p").requires_grad);
    }

    [Fact]
    public void EntriesFollowTheDataOrderAndLookupsNameTheFile()
    {
        using var scope = NewDisposeScope();
        var path = _temp.File("t.safetensors");
        SafetensorsWriter.Write(path, [new("b", ones(3)), new("a", zeros(2)), new("c", ones(1))]);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["b", "a", "c"], file.Entries.Select(entry => entry.Name));
        Assert.True(file.Contains("a"));
        Assert.False(file.Contains("missing"));
        var error = Assert.Throws<KeyNotFoundException>(() => file["missing"]);
        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Throws<KeyNotFoundException>(() => file.ReadTensor("missing"));
    }

    [Fact]
    public void ReadTensorsOutliveTheFile()
    {
        using var original = arange(10, ScalarType.Int32);
        var path = _temp.File("t.safetensors");
        SafetensorsWriter.Write(path, [new("w", original)]);

        Tensor read;
        using (var file = SafetensorsFile.Open(path))
        {
            read = file.ReadTensor("w");
            file.Dispose();
            Assert.Throws<ObjectDisposedException>(() => file.ReadTensor("w"));
        }
        using (read)
        {
            Assert.Equal(original.data<int>().ToArray(), read.data<int>().ToArray());
        }
    }

    [Fact]
    public void WriteReplacesAnExistingFileAndLeavesNoTemp()
    {
        using var first = ones(4);
        using var second = zeros(2);
        var path = _temp.File("t.safetensors");

        SafetensorsWriter.Write(path, [new("first", first)]);
        SafetensorsWriter.Write(path, [new("second", second)]);

        Assert.Equal(["t.safetensors"], _temp.FileNames());
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["second"], file.Entries.Select(entry => entry.Name));
    }

    [Fact]
    public void FailedWriteLeavesNothingBehind()
    {
        using var t = ones(1);
        using var complex = torch.zeros(2, ScalarType.ComplexFloat32);
        var path = _temp.File("t.safetensors");

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new("w", t), new("w", t)]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new("__metadata__", t)]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [new("c", complex)]));

        Assert.Empty(_temp.FileNames());
    }

    private static Tensor RandomTensor(long[] shape, ScalarType dtype, int seed)
    {
        var result = torch.empty(shape, dtype);
        var bytes = new byte[result.numel() * result.element_size()];
        new Random(seed).NextBytes(bytes);
        if (dtype == ScalarType.Bool)
        {
            // Only 0 and 1 are valid bools.
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] &= 1;
            }
        }
        result.bytes = bytes;
        return result;
    }
}
