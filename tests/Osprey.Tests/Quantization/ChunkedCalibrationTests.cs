using Osprey.Models;
using Osprey.Quantization;
using Osprey.Runtime;
using Osprey.Tests.Cli.Commands;
using static TorchSharp.torch;

namespace Osprey.Tests.Quantization;

/// <summary>
/// Calibration bounds its device memory by taking inputs a chunk of tokens at a time (the recorders' Hessian and
/// statistics, AWQ's scale loss) and output rows a batch at a time (AWQ's clipping search). Here the chunks are made a
/// few rows small so many run, and the result must be what one chunk gives: the Hessian equals 2·XᵀX/n computed in
/// float64 by libtorch's matmul, AWQ picks the same scales and clipping bounds, and a whole GPTQ or AWQ quantization of a
/// tiny model packs the same weights (but for rounding ties).
/// </summary>
public sealed class ChunkedCalibrationTests
{
    public ChunkedCalibrationTests() => TorchRuntime.Initialize(DeviceSpec.Cpu);

    [Fact]
    public void ChunkedRecorderGivesTheHessianAndStatisticsOfAllTokens()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(11, CPU);
        // Three forwards of 13, 7 and 20 tokens, 24 wide, taken 5 tokens at a time (chunks that straddle nothing).
        var inputs = new[] { 13L, 7L, 20L }.Select(t => randn([1, t, 24], generator: g)).ToList();
        using var chunked = new InputRecorder(hessian: true, keepRows: 30, chunkRows: 5);
        foreach (var x in inputs) chunked.AddTo(x, x);
        var all = cat(inputs.Select(x => x.reshape(-1, 24)).ToList(), 0).to_type(ScalarType.Float64);
        var expected = all.t().matmul(all).mul(2.0 / 40);
        Assert.Equal(40, chunked.Tokens);
        using var h = chunked.Hessian();
        var err = (h.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(err < 1e-5, $"the chunked Hessian is {err:E3} from 2·XᵀX/n");
        var meanErr = (chunked.AbsMean().to_type(ScalarType.Float64) - all.abs().mean([0])).abs().max().item<double>();
        Assert.True(meanErr < 1e-6, $"mean |x| per channel is {meanErr:E3} off");
        // The kept rows are the first 30 tokens in order, whole.
        Assert.True(chunked.Rows()!.equal(all.narrow(0, 0, 30).to_type(ScalarType.Float32)).all().item<bool>(), "the kept rows are not the first 30 tokens");
        using var taken = chunked.TakeHessian();
        Assert.True((taken.to_type(ScalarType.Float64) - expected).abs().max().item<double>() < 1e-5, "TakeHessian differs from 2·XᵀX/n");
    }

    [Theory]
    [InlineData(32, 128, 32)]
    [InlineData(48, 256, 64)]
    public void AwqScaleAndClipSearchesChooseTheSameInChunks(long rows, long inFeatures, int group)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)(rows * inFeatures), CPU);
        var w = randn(rows, inFeatures, generator: g).mul(0.05);
        // Channels of very different size, as real activations have, so the search moves away from α = 0.
        var x = randn(600, inFeatures, generator: g).mul(rand(inFeatures, generator: g).mul(6).exp());
        var mean = x.abs().mean([0]);
        var whole = AwqSearch.SearchScales(w, x, mean, group, chunkRows: 1 << 20);
        var ones = ones_like(whole);
        Assert.False(whole.equal(ones).all().item<bool>(), "the test problem should choose scales other than all ones");
        foreach (var chunk in new long[] { 7, 64, 599 })
            Assert.True(AwqSearch.SearchScales(w, x, mean, group, chunkRows: chunk).equal(whole).all().item<bool>(), $"chunks of {chunk} tokens chose other scales");
        var scaled = w.mul(whole);
        var bounds = AwqSearch.SearchClip(scaled, x.div(whole), group, rowBatch: rows);
        foreach (var batch in new long[] { 1, 5, 0 })
            Assert.True(AwqSearch.SearchClip(scaled, x.div(whole), group, rowBatch: batch).equal(bounds).all().item<bool>(), $"row batches of {batch} chose other clipping bounds");
    }

    [Theory]
    [InlineData("gptq", "qwen3")]
    [InlineData("awq", "gemma2")]
    public void SmallChunksPackTheSameWeightsAsOneChunk(string method, string family)
    {
        var settings = new QuantizedExportSettings { Method = method, Bits = 4, GroupSize = 32, DescAct = method == "gptq" };
        var rng = new Random(7);
        using var probe = CausalLM.Load(CliRun.Fixture(family), CPU, ScalarType.Float32);
        var vocab = probe.Spec.VocabSize;
        var samples = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 48).Select(_ => rng.Next(vocab)).ToArray()).ToList();

        Dictionary<string, Tensor> Quantized(long chunkRows)
        {
            using var model = CausalLM.Load(CliRun.Fixture(family), CPU, ScalarType.Float32);
            CalibratedQuantizer.Quantize(model, samples, heldOut: 1, settings, TextWriter.Null, chunkRows);
            return model.LinearLayers().Where(l => l.Layer.Base is not null)
                .ToDictionary(l => l.Path, l => l.Layer.Base!.Dequantize().DetachFromDisposeScope());
        }

        // 0: the defaults, one chunk for 48-token samples; 5: chunks of 5 tokens, AWQ loss chunks and clip batches of 5 rows.
        var one = Quantized(0);
        var small = Quantized(5);
        try
        {
            Assert.NotEmpty(one);
            Assert.Equal(one.Keys.Order(), small.Keys.Order());
            // Sums taken in another order round differently in the last bit, which may move a weight that sits on a
            // rounding boundary to the next code (none did here); a chunking mistake changes far more than that.
            foreach (var (path, w) in one)
            {
                var same = w.eq(small[path]).to_type(ScalarType.Float32).mean().item<float>();
                Assert.True(same >= 0.995f, $"{method} {family}: {path} packs other weights in chunks (only {same:P2} equal)");
            }
        }
        finally
        {
            foreach (var t in one.Values.Concat(small.Values)) t.Dispose();
        }
    }
}
