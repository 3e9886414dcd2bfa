using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;

namespace Osprey.Tests.Inference;

/// <summary>The library example of README.md ("Using the library"), run on a fixture model.</summary>
public sealed class ReadmeExampleTests
{
    [Fact]
    public void ReadmeLibraryExampleRuns()
    {
        var path = Path.Combine(TestPaths.Fixtures, "parity", "llama3");
        var streamed = new List<int>();

        using var model = CausalLM.Load(path, new ModelLoadOptions { Device = DeviceSpec.Parse("cpu") });
        var options = SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(path)) with { MaxTokens = 64 };
        var result = new TokenGenerator(model).Generate([1, 2, 3], options, t => streamed.Add(t.TokenId));

        Assert.Equal(result.Tokens, streamed);
        Assert.True(result.Reason == FinishReason.Eos ? result.Tokens[^1] == 2 : result.Tokens.Count == 64);
    }
}
