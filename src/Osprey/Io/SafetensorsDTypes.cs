using static TorchSharp.torch;

namespace Osprey.Io;

/// <summary>The safetensors dtype strings, their element sizes and the TorchSharp types Osprey reads them as.</summary>
internal static class SafetensorsDTypes
{
    // Element sizes of every byte-sized dtype the format defines, so a header can be validated even for tensors
    // Osprey cannot turn into TorchSharp tensors (e.g. FP8 weights next to ordinary ones).
    private static readonly Dictionary<string, int> s_elementSizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8,
        ["F32"] = 4,
        ["F16"] = 2,
        ["BF16"] = 2,
        ["I64"] = 8,
        ["I32"] = 4,
        ["I16"] = 2,
        ["I8"] = 1,
        ["U64"] = 8,
        ["U32"] = 4,
        ["U16"] = 2,
        ["U8"] = 1,
        ["BOOL"] = 1,
        ["F8_E4M3"] = 1,
        ["F8_E5M2"] = 1,
        ["F8_E8M0"] = 1,
        ["C64"] = 8,
    };

    private static readonly Dictionary<string, ScalarType> s_scalarTypes = new(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64,
        ["F32"] = ScalarType.Float32,
        ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64,
        ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16,
        ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte,
        ["BOOL"] = ScalarType.Bool,
    };

    private static readonly Dictionary<ScalarType, string> s_names =
        s_scalarTypes.ToDictionary(pair => pair.Value, pair => pair.Key);

    /// <summary>The element size of a dtype the format defines, or null for a string it does not know.</summary>
    public static int? ElementSize(string dtype) => s_elementSizes.TryGetValue(dtype, out var size) ? size : null;

    public static bool TryGetScalarType(string dtype, out ScalarType scalarType) =>
        s_scalarTypes.TryGetValue(dtype, out scalarType);

    public static bool TryGetName(ScalarType scalarType, out string name) =>
        s_names.TryGetValue(scalarType, out name!);

    /// <summary>The dtypes Osprey can read and write, for error messages.</summary>
    public static string SupportedList => string.Join(", ", s_scalarTypes.Keys);
}
