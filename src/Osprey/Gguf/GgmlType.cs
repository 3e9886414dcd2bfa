namespace Osprey.Gguf;

/// <summary>
/// The tensor encodings of a GGUF file that Osprey reads and writes, with ggml's numeric ids (ggml.h <c>ggml_type</c>).
/// </summary>
public enum GgmlType : uint
{
    /// <summary>IEEE float32.</summary>
    F32 = 0,
    /// <summary>IEEE float16.</summary>
    F16 = 1,
    /// <summary>Blocks of 32: an f16 scale and 32 4-bit codes (value = (code − 8)·d).</summary>
    Q4_0 = 2,
    /// <summary>Blocks of 32: f16 scale d and minimum m, 32 4-bit codes (value = code·d + m).</summary>
    Q4_1 = 3,
    /// <summary>Blocks of 32: an f16 scale, 32 5-bit codes (low nibbles, then one high bit each in a uint32; value = (code − 16)·d).</summary>
    Q5_0 = 6,
    /// <summary>Blocks of 32: f16 scale d and minimum m, 32 5-bit codes (value = code·d + m).</summary>
    Q5_1 = 7,
    /// <summary>Blocks of 32: an f16 scale and 32 int8 codes (value = code·d).</summary>
    Q8_0 = 8,
    /// <summary>Super-blocks of 256: 16 sub-blocks of 16 with 4-bit scales and mins, 2-bit codes (read only).</summary>
    Q2_K = 10,
    /// <summary>Super-blocks of 256: 16 sub-blocks of 16 with 6-bit signed scales, 3-bit codes (read only).</summary>
    Q3_K = 11,
    /// <summary>Super-blocks of 256: 8 sub-blocks of 32 with 6-bit scales and mins, 4-bit codes.</summary>
    Q4_K = 12,
    /// <summary>Super-blocks of 256: 8 sub-blocks of 32 with 6-bit scales and mins, 5-bit codes.</summary>
    Q5_K = 13,
    /// <summary>Super-blocks of 256: 16 sub-blocks of 16 with int8 scales, 6-bit codes.</summary>
    Q6_K = 14,
    /// <summary>bfloat16.</summary>
    BF16 = 30,
}
