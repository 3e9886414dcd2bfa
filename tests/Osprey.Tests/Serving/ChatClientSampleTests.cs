using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Tests.Serving;

/// <summary>examples/ChatClientSample runs end to end on the built-in demo model.</summary>
public sealed class ChatClientSampleTests
{
    [Fact]
    public async Task TheSampleStreamsAnAnswerFromTheDemoModel()
    {
        using var dir = new TempDirectory();
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var folder = DemoModel.EnsureCreated(Path.Combine(dir.Path, "demo"));
        var output = new StringWriter();

        var code = await ChatClientSample.Program.RunAsync([folder, "--device", "cpu", "--question", "Hello?"], output);

        Assert.Equal(0, code);
        var lines = output.ToString().Split('\n');
        Assert.Equal("demo> ", lines[0]);
        Assert.Matches(@"^\[finish: (stop|length), prompt tokens: \d+, completion tokens: \d+\]$", lines[^2]);
        Assert.True(output.ToString().Length > lines[0].Length + lines[^2].Length + 2, "the sample printed no answer");
    }
}
