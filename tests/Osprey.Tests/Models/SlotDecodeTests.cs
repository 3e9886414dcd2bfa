using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>
/// <see cref="CausalLM.DecodeSlots"/> in the fixed-shape form a CUDA graph captures (positions in a device tensor,
/// the whole cache capacity attended under a mask) against the ordinary cached decode path, teacher-forced with the
/// same tokens: logits within 1e-4 at every step in float32 for every parity fixture family (sliding windows and
/// soft-capping included).
/// </summary>
public sealed class SlotDecodeTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in ParityCase.Folders()) data.Add(dir);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FixedShapeSlotStepMatchesCachedForward(string dir)
    {
        var c = ParityCase.Load(dir);
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(c.Directory, CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        const int batch = 2, prompt = 7, steps = 12;
        long capacity = 32;
        var rng = new Random(3);
        var tokens = tensor(Enumerable.Range(0, batch * (prompt + steps)).Select(_ => (long)rng.Next(1, (int)model.Spec.VocabSize)).ToArray(), [batch, prompt + steps]);

        var refCache = model.NewCache(batch, capacity);
        model.Forward(tokens.narrow(1, 0, prompt), null, null, refCache, lastOnly: true);
        var kv = model.NewCache(batch, capacity);
        model.Forward(tokens.narrow(1, 0, prompt), null, null, kv, lastOnly: true);
        // The fixed-shape form a CUDA graph captures: inputs in static tensors, the whole capacity attended under a mask.
        var ids = zeros(batch, 1, dtype: ScalarType.Int64);
        var positions = full(batch, prompt, dtype: ScalarType.Int64);
        for (int i = 0; i < steps; i++)
        {
            var input = tokens.narrow(1, prompt + i, 1);
            var expected = model.Forward(input, null, null, refCache, lastOnly: true).squeeze(1);
            ids.copy_(input);
            var actual = model.DecodeSlots(ids, positions, kv, capacity);
            var diff = (actual - expected).abs().max().item<float>();
            Assert.True(diff < 1e-4, $"{Path.GetFileName(dir)} step {i}: max |slot step - cached| = {diff}");
            positions.add_(1);
        }
    }
}
