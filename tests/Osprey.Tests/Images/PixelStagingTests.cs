using Osprey.Images;
using static TorchSharp.torch;

namespace Osprey.Tests.Images;

/// <summary>The reused host buffer that image batches are gathered in: values in order, results that never alias it.</summary>
public sealed class PixelStagingTests
{
    [Fact]
    public void Stage_ConcatenatesInOrder_AndEarlierResultsSurviveLaterCalls()
    {
        using var staging = new PixelStaging();
        float[] a = [1, 2, 3, 4, 5, 6], b = [7, 8, 9, 10, 11, 12];
        using var first = staging.Stage([a, b], [4, 3], CPU, ScalarType.Float32);
        Assert.Equal([4L, 3L], first.shape);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (float)i).ToArray(), first.data<float>().ToArray());

        // A smaller batch reuses the buffer; the first result is its own memory, so it keeps its values.
        using var second = staging.Stage([new float[] { -1, -2, -3 }], [1, 3], CPU, ScalarType.Float32);
        Assert.Equal([-1f, -2f, -3f], second.data<float>().ToArray());
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (float)i).ToArray(), first.data<float>().ToArray());

        // A larger batch grows it.
        var big = Enumerable.Range(0, 30).Select(i => (float)i / 4).ToArray();
        using var third = staging.Stage([big, a], [12, 3], CPU, ScalarType.Float32);
        Assert.Equal(big.Concat(a).ToArray(), third.data<float>().ToArray());
    }

    [Fact]
    public void Stage_ConvertsToTheModelDtype()
    {
        using var staging = new PixelStaging();
        using var t = staging.Stage([new float[] { 0.5f, -1.25f, 3f, 1f / 3 }], [2, 2], CPU, ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, t.dtype);
        // bfloat16 keeps 8 significant bits: 1/3 becomes 0.333984375.
        Assert.Equal([0.5f, -1.25f, 3f, 0.333984375f], t.to_type(ScalarType.Float32).data<float>().ToArray());
    }

    [Fact]
    public void Stage_RefusesAShapeTheValuesDoNotFill()
    {
        using var staging = new PixelStaging();
        var e = Assert.Throws<ArgumentException>(() => staging.Stage([new float[5]], [2, 3], CPU, ScalarType.Float32));
        Assert.Contains("5 values do not fill [2, 3]", e.Message);
    }
}
