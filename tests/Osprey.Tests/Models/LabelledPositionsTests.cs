using Osprey.Models;
using Osprey.Tests.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;
using Xunit;

namespace Osprey.Tests.Models;

public class LabelledPositionsTests
{
    [Fact]
    public void HostPositionsEqualTheDevicesNonzeroOfTheShiftedMask()
    {
        long[] labels = [-100, -100, 5, 6, -100, 7, /* row 2 */ 1, -100, -100, -100, 9, 9];
        var host = TrainForwardOptions.LabelledPositionsOf(labels, 2, 6);
        using var t = tensor(labels, [2, 6]);
        using var device = t.narrow(1, 1, 5).ne(-100).reshape(-1).nonzero().reshape(-1);
        Assert.Equal(device.data<long>().ToArray(), host);
        Assert.Equal([1L, 2L, 4L, 8L, 9L], host);
    }

    [Fact]
    public void ForwardBackwardGivesTheSameLossAndGradientsWithHostPositions()
    {
        using var model = LoraTestModels.Load("qwen2");
        var g = new torch.Generator(3, CPU);
        const int rows = 2, columns = 9;
        var ids = randint(0, 100, [rows, columns], generator: g, dtype: ScalarType.Int64);
        var labels = ids.clone();
        labels[0, 0] = -100; labels[0, 1] = -100; labels[1, 4] = -100; labels[1, 5] = -100;
        var hostLabels = labels.data<long>().ToArray();
        foreach (var p in model.parameters()) p.requires_grad_(true);
        (float Loss, float[] Grad) Run(Tensor? positions)
        {
            foreach (var p in model.parameters()) p.grad = null;
            using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { LossScale = 0.1, LabelledPositions = positions });
            var grads = model.parameters().Select(p => p.grad?.reshape(-1) ?? throw new InvalidOperationException("a parameter got no gradient")).ToList();
            using var all = cat(grads, 0);
            return (r.LossSum.ToSingle(), all.data<float>().ToArray());
        }
        var plain = Run(null);
        using var positions = tensor(TrainForwardOptions.LabelledPositionsOf(hostLabels, rows, columns));
        var given = Run(positions);
        Assert.Equal(plain.Loss, given.Loss);
        Assert.Equal(plain.Grad, given.Grad);
        Assert.True(plain.Grad.Any(x => x != 0), "no gradient at all");
    }

    [Fact]
    public void RowLogProbsAreTheSameWithHostPositions()
    {
        // The preference recipes' reference pass (RowLogProbs, no backward) takes host positions with pinned uploads too.
        using var model = LoraTestModels.Load("qwen2");
        var g = new torch.Generator(5, CPU);
        const int rows = 3, columns = 7;
        var ids = randint(0, 100, [rows, columns], generator: g, dtype: ScalarType.Int64);
        var labels = ids.clone();
        labels[0, 0] = -100; labels[1, 0] = -100; labels[1, 1] = -100; labels[2, 6] = -100;
        float[] Run(Tensor? positions)
        {
            using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { Backward = false, RowLogProbs = true, LabelledPositions = positions });
            return r.RowLogProbs!.to_type(ScalarType.Float32).data<float>().ToArray();
        }
        var plain = Run(null);
        using var positions = tensor(TrainForwardOptions.LabelledPositionsOf(labels.data<long>().ToArray(), rows, columns));
        Assert.Equal(plain, Run(positions));
        Assert.Equal(rows, plain.Length);
        Assert.All(plain, x => Assert.True(x < 0 && float.IsFinite(x)));
        // On the CPU the pinned variant is never used: the positions are found where the labels are.
        Assert.Null(TrainForwardOptions.PinnedLabelledPositions(labels.data<long>().ToArray(), rows, columns, CPU));
    }
}
