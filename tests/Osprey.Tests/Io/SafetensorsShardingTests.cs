using System.Text.Json;
using Osprey.Io;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Io;

/// <summary>Hugging Face sharded checkpoints: writing, re-saving over an earlier save, and opening.</summary>
public sealed class SafetensorsShardingTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly DisposeScope _scope = NewDisposeScope();

    public void Dispose()
    {
        _scope.Dispose();
        _temp.Dispose();
    }

    /// <summary>400 + 200 + 1200 + 80 + 40 bytes; with a 500-byte limit: [a] [b] [c, over the limit alone] [d, e].</summary>
    private static List<KeyValuePair<string, Tensor>> Model() =>
    [
        new("a", randn(100)),
        new("b", randn(5, 10)),
        new("c", randn(300)),
        new("d", arange(10, ScalarType.Int64)),
        new("e", randn(20).to_type(ScalarType.BFloat16)),
    ];

    [Fact]
    public void WritesShardsAndAnIndexThatReadBack()
    {
        var model = Model();

        var written = SafetensorsWriter.WriteSharded(_temp.Path, model, maxShardBytes: 500);

        string[] shards =
        [
            "model-00001-of-00004.safetensors",
            "model-00002-of-00004.safetensors",
            "model-00003-of-00004.safetensors",
            "model-00004-of-00004.safetensors",
        ];
        Assert.Equal([.. shards, "model.safetensors.index.json"], written);
        Assert.Equal([.. shards, "model.safetensors.index.json"], _temp.FileNames());

        using (var index = JsonDocument.Parse(File.ReadAllText(_temp.File("model.safetensors.index.json"))))
        {
            Assert.Equal(1920, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            var weightMap = index.RootElement.GetProperty("weight_map").EnumerateObject()
                .ToDictionary(property => property.Name, property => property.Value.GetString());
            Assert.Equal(
                new Dictionary<string, string?>
                {
                    ["a"] = shards[0], ["b"] = shards[1], ["c"] = shards[2], ["d"] = shards[3], ["e"] = shards[3],
                },
                weightMap);
        }
        using (var last = SafetensorsFile.Open(_temp.File(shards[3])))
        {
            Assert.Equal(["d", "e"], last.Entries.Select(entry => entry.Name));
            Assert.Equal("pt", last.Metadata["format"]);
        }

        using var checkpoint = SafetensorsCheckpoint.Open(_temp.Path);
        Assert.Equal(shards.Select(_temp.File), checkpoint.Files);
        Assert.Equal(["a", "b", "c", "d", "e"], checkpoint.Names);
        Assert.Equal("BF16", checkpoint.Entry("e").DType);
        Assert.Equal([5L, 10L], checkpoint.Entry("b").Shape);
        foreach (var (name, original) in model)
        {
            Assert.True(checkpoint.Contains(name));
            Assert.Equal(original.bytes.ToArray(), checkpoint.ReadTensor(name).bytes.ToArray());
        }
        Assert.False(checkpoint.Contains("f"));
        var error = Assert.Throws<KeyNotFoundException>(() => checkpoint.ReadTensor("f"));
        Assert.Contains(_temp.Path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WhatFitsInOneShardIsOneFileWithoutIndex()
    {
        var written = SafetensorsWriter.WriteSharded(_temp.Path, Model(), SafetensorsWriter.ParseSize("5GB"));

        Assert.Equal(["model.safetensors"], written);
        Assert.Equal(["model.safetensors"], _temp.FileNames());
        using var checkpoint = SafetensorsCheckpoint.Open(_temp.Path);
        Assert.Equal(5, checkpoint.Names.Count);
    }

    [Fact]
    public void ReSavingRemovesStaleFilesOfTheSameBaseNameOnly()
    {
        File.WriteAllText(_temp.File("config.json"), "{}");
        File.WriteAllBytes(_temp.File("model-extra-00001-of-00002.safetensors"), []);
        File.WriteAllBytes(_temp.File("adapter.safetensors"), []);
        string[] unrelated = ["adapter.safetensors", "config.json", "model-extra-00001-of-00002.safetensors"];

        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 500);
        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 1700);

        Assert.Equal(
            Sorted([.. unrelated, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]),
            _temp.FileNames());
        using (var checkpoint = SafetensorsCheckpoint.Open(_temp.Path))
        {
            Assert.Equal(2, checkpoint.Files.Count);
            Assert.Equal(5, checkpoint.Names.Count);
        }

        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 1L << 20);

        Assert.Equal(Sorted([.. unrelated, "model.safetensors"]), _temp.FileNames());

        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 1000);

        Assert.Equal(
            Sorted([.. unrelated, "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"]),
            _temp.FileNames());
    }

    private static string[] Sorted(string[] names) => names.Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void AnotherBaseNameIsWrittenAlongside()
    {
        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 1L << 20);
        var written = SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 1000, baseName: "adapter_model");

        Assert.Equal(
            ["adapter_model-00001-of-00003.safetensors", "adapter_model-00002-of-00003.safetensors", "adapter_model-00003-of-00003.safetensors", "adapter_model.safetensors.index.json"],
            written);
        Assert.Contains("model.safetensors", _temp.FileNames());
    }

    [Fact]
    public void AFailedSaveKeepsThePreviousOne()
    {
        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 500);
        var before = _temp.FileNames();
        var bad = Model();
        bad.Add(new("complex", zeros(2, ScalarType.ComplexFloat32)));

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(_temp.Path, bad, maxShardBytes: 1L << 20));

        Assert.Equal(before, _temp.FileNames());
    }

    [Fact]
    public void AShardMissingFromTheIndexIsNamed()
    {
        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 500);
        File.Delete(_temp.File("model-00003-of-00004.safetensors"));

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(_temp.Path));
        Assert.Contains(_temp.File("model.safetensors.index.json"), error.Message, StringComparison.Ordinal);
        Assert.Contains("model-00003-of-00004.safetensors", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"metadata\":{}")]
    [InlineData("{\"metadata\":{\"total_size\":1}}")]
    [InlineData("{\"weight_map\":{\"a\":3}}")]
    [InlineData("{\"weight_map\":{\"a\":\"../model-00001-of-00004.safetensors\"}}")]
    [InlineData("{\"weight_map\":{\"a\":\"model-00002-of-00004.safetensors\"}}")]
    public void AMalformedIndexIsNamed(string json)
    {
        SafetensorsWriter.WriteSharded(_temp.Path, Model(), maxShardBytes: 500);
        var index = _temp.File("model.safetensors.index.json");
        File.WriteAllText(index, json);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(_temp.Path));
        Assert.Contains(index, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATensorInTwoShardsIsRefused()
    {
        SafetensorsWriter.Write(_temp.File("one.safetensors"), [new("a", ones(1)), new("b", ones(1))]);
        SafetensorsWriter.Write(_temp.File("two.safetensors"), [new("b", ones(1))]);
        File.WriteAllText(
            _temp.File("model.safetensors.index.json"),
            "{\"metadata\":{\"total_size\":12},\"weight_map\":{\"a\":\"one.safetensors\",\"b\":\"two.safetensors\"}}");

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(_temp.Path));
        Assert.Contains("'b'", error.Message, StringComparison.Ordinal);
        Assert.Contains(_temp.File("two.safetensors"), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFolderWithoutWeightsIsNamed()
    {
        File.WriteAllText(_temp.File("config.json"), "{}");

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(_temp.Path));
        Assert.Contains(_temp.Path, error.Message, StringComparison.Ordinal);
        Assert.Contains("--model", error.Message, StringComparison.Ordinal);

        var missing = Path.Combine(_temp.Path, "nope");
        error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(missing));
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ALoneSafetensorsFileIsTheCheckpointButTwoAreAmbiguous()
    {
        SafetensorsWriter.Write(_temp.File("weights.safetensors"), [new("a", ones(2))]);

        using (var checkpoint = SafetensorsCheckpoint.Open(_temp.Path))
        {
            Assert.Equal([_temp.File("weights.safetensors")], checkpoint.Files);
            Assert.Equal(["a"], checkpoint.Names);
        }

        SafetensorsWriter.Write(_temp.File("other.safetensors"), [new("b", ones(2))]);

        var error = Assert.Throws<OspreyFormatException>(() => SafetensorsCheckpoint.Open(_temp.Path));
        Assert.Contains(_temp.Path, error.Message, StringComparison.Ordinal);

        SafetensorsWriter.Write(_temp.File("model.safetensors"), [new("c", ones(2))]);

        using (var checkpoint = SafetensorsCheckpoint.Open(_temp.Path))
        {
            Assert.Equal(["c"], checkpoint.Names);
        }
    }
}
