using System.Text.Json;
using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Tests.Training;

/// <summary>README's fine-tuning example (examples/FineTuneSample, one <c>FineTuning.Sft</c> call) trains for real on the demo model.</summary>
public sealed class FineTuneSampleTests
{
    [Fact]
    public void TheSampleTrainsAnAdapterAndTheLossFalls()
    {
        using var dir = new TempDirectory();
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var model = DemoModel.EnsureCreated(Path.Combine(dir.Path, "demo"));
        var data = Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");
        var output = new StringWriter();

        var code = FineTuneSample.Program.Run([model, data, Path.Combine(dir.Path, "out"), "20"], output, TextWriter.Null);

        Assert.Equal(0, code);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var adapter = lines[0]["adapter: ".Length..];
        Assert.EndsWith("checkpoint-20", adapter);
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_config.json")));
        var losses = File.ReadLines(lines[1]["logs: ".Length..])
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("loss", out _))
            .Select(r => r.GetProperty("loss").GetDouble())
            .ToList();
        Assert.True(losses.Count >= 2, "the run logged fewer than two losses");
        Assert.True(losses[^1] < losses[0] * 0.8, $"the loss did not fall: {string.Join(", ", losses)}");
    }
}
