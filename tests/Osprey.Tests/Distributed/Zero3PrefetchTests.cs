using Osprey.Distributed;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Distributed;

/// <summary>
/// ZeRO-3's prefetch through the real training pass (a group of one, gradient checkpointing, the 2-layer qwen2
/// fixture): each layer's all-gather is started one layer ahead — in the forward pass the next layer's, in the
/// backward pass's recompute the previous one's — and waited for only when that layer runs; and the gradients equal
/// those of the same pass without sharding.
/// </summary>
public sealed class Zero3PrefetchTests
{
    [Fact]
    public void EachLayersGatherStartsALayerAhead_InBothDirections_AndTheGradientsAreUnchanged()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var g = new Random(3);
        var idsData = Enumerable.Range(0, 2 * 16).Select(_ => (long)g.Next(4, 256)).ToArray();
        using var ids = tensor(idsData, [2, 16]);
        using var labels = ids.clone();

        Dictionary<string, float[]> Run(bool zero3, List<string> trace)
        {
            using var model = CausalLM.Load(CliRun.Fixture("qwen2"), CPU, ScalarType.Float32);
            var optimizer = new AdamW(0.9, 0.999, 1e-8);
            var parameters = model.BaseParameters().ToList();
            Assert.Equal(2, parameters.Select(p => AdamW.DecoderLayerOf(p.Name)).Where(l => l >= 0).Distinct().Count());
            foreach (var (name, p) in parameters)
            {
                p.requires_grad_(true);
                optimizer.Add(name, p, 0.0);
            }
            using var group = ProcessGroup.Single();
            using var collectives = group.Collectives(CPU, TextWriter.Null);
            if (zero3)
            {
                optimizer.Distribute(collectives, ZeroStage.Zero3, offload: false);
                optimizer.GatherTrace = trace.Add;
            }
            model.train();
            using (model.ForwardBackward(ids, labels, null, new TrainForwardOptions { GradientCheckpointing = true, Residency = optimizer.TrainingHook(true) })) { }
            using var norm = optimizer.ClipGradients(0);
            // The step's gradient, per parameter, from the optimizer's flat buffers (sharded or not: one rank holds it all).
            var result = parameters.ToDictionary(p => p.Name, p => optimizer.GradientOf(p.Name));
            optimizer.Dispose();
            return result;
        }

        var trace = new List<string>();
        var plain = Run(zero3: false, []);
        var sharded = Run(zero3: true, trace);
        // Forward: layer 1's gather is started before layer 0 runs. Backward (recompute from the top): layer 0's is
        // started before layer 1 runs again, and only waited for when layer 0's turn comes.
        Assert.Equal(["start 0", "wait 0", "start 1", "run 0", "wait 1", "run 1", "start 1", "wait 1", "start 0", "run 1", "wait 0", "run 0"], trace);
        Assert.Equal(plain.Keys.Order(), sharded.Keys.Order());
        foreach (var (name, values) in plain) Assert.True(values.SequenceEqual(sharded[name]), $"{name}: the ZeRO-3 gradient differs");
    }
}
