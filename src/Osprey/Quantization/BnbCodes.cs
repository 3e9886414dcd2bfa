using static TorchSharp.torch;

namespace Osprey.Quantization;

/// <summary>
/// The code tables of bitsandbytes (functional.py and its CUDA kernels), written out from their published definitions:
/// the 16 NF4 values (quantiles of N(0, 1) scaled to [-1, 1]), the 16 FP4 values (e2m1 with bitsandbytes' bias, divided
/// by their largest magnitude, 12), and the signed 8-bit dynamic map (create_dynamic_map) used for double quantization.
/// </summary>
internal static class BnbCodes
{
    /// <summary>NF4 values by 4-bit code (bitsandbytes get_4bit_type("nf4")).</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>FP4 values by 4-bit code: bit 3 is the sign, bits 0-2 the magnitude [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12.</summary>
    public static readonly float[] Fp4 = MakeFp4();

    static float[] MakeFp4()
    {
        double[] raw = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0];
        var table = new float[16];
        for (var i = 0; i < 8; i++)
        {
            table[i] = (float)(raw[i] / 12.0);
            table[i + 8] = -(float)(raw[i] / 12.0);
        }
        return table;
    }

    /// <summary>
    /// NF4's decision thresholds (kQuantizeBlockwise's dQuantizeNF4): the midpoints of neighbouring values. A scaled
    /// value gets the code equal to how many thresholds it exceeds (strictly), so a value on a midpoint takes the lower code.
    /// </summary>
    public static readonly float[] Nf4Thresholds = Enumerable.Range(0, 15).Select(i => (float)(((double)Nf4[i] + Nf4[i + 1]) / 2)).ToArray();

    /// <summary>FP4's magnitude thresholds as dQuantizeFP4 writes them (its float literals, not exact midpoints).</summary>
    public static readonly float[] Fp4Thresholds = [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];

    /// <summary>The FP4 magnitude code of each threshold bucket (ascending magnitude 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1).</summary>
    public static readonly long[] Fp4MagnitudeCodes = [0, 1, 6, 7, 4, 5, 2, 3];

    /// <summary>The 16 values of a 4-bit type.</summary>
    public static float[] Table(FourBitType type) => type == FourBitType.Nf4 ? Nf4 : Fp4;

    // Python's 10 ** (i - 6) as doubles (Math.Pow is not guaranteed to round these exactly).
    static readonly double[] Scales = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];

    /// <summary>
    /// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for i in 0..6 the means of
    /// neighbouring points of linspace(0.1, 1, 2^i + 1) (float32) scaled by 10^(i-6), with both signs, plus 0 and 1,
    /// sorted (256 values). Computed with libtorch's linspace as bitsandbytes does, so the values match bit for bit.
    /// </summary>
    public static Tensor DynamicMap(Device device)
    {
        var values = new List<float>(256);
        using (NewDisposeScope())
        {
            for (var i = 0; i < 7; i++)
            {
                var boundaries = linspace(0.1, 1.0, (1 << i) + 1, dtype: ScalarType.Float32);
                var means = (boundaries.narrow(0, 0, 1 << i) + boundaries.narrow(0, 1, 1 << i)) / 2.0;
                var scale = Scales[i];
                values.AddRange((means * scale).data<float>());
                values.AddRange((means * -scale).data<float>());
            }
        }
        values.Add(0f);
        values.Add(1f);
        values.Sort();
        return tensor(values.ToArray(), dtype: ScalarType.Float32, device: device);
    }
}
