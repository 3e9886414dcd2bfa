using TorchSharp;

namespace Osprey.Runtime;

/// <summary>Maps the dtype names of Hugging Face configs and <c>--torch_dtype</c> to TorchSharp types.</summary>
public static class DTypes
{
    /// <summary>
    /// Resolves <c>--torch_dtype</c>: auto means the config's dtype on a GPU and float32 on the CPU (CPU
    /// kernels for half types are slow and less exact).
    /// </summary>
    public static torch.ScalarType Resolve(string? requested, string? configDtype, torch.Device device)
    {
        var r = (requested ?? "auto").Trim().ToLowerInvariant();
        if (r is "" or "auto")
        {
            if (device.type != DeviceType.CUDA) return torch.ScalarType.Float32;
            return configDtype is null ? torch.ScalarType.BFloat16 : Parse(configDtype, "config.json dtype");
        }
        return Parse(r, "--torch_dtype");
    }

    /// <summary>Parses bfloat16/bf16, float16/fp16/half, float32/fp32/float (torch. prefix allowed).</summary>
    public static torch.ScalarType Parse(string text, string what = "--torch_dtype")
    {
        var t = text.Trim().ToLowerInvariant();
        if (t.StartsWith("torch.", StringComparison.Ordinal)) t = t[6..];
        return t switch
        {
            "bfloat16" or "bf16" => torch.ScalarType.BFloat16,
            "float16" or "fp16" or "half" => torch.ScalarType.Float16,
            "float32" or "fp32" or "float" => torch.ScalarType.Float32,
            _ => throw new OspreyException($"{what} '{text}' is not supported; use auto, bfloat16, float16 or float32."),
        };
    }

    /// <summary>The Hugging Face name of a dtype (as config.json writes it).</summary>
    public static string Name(torch.ScalarType t) => t switch
    {
        torch.ScalarType.BFloat16 => "bfloat16",
        torch.ScalarType.Float16 => "float16",
        torch.ScalarType.Float32 => "float32",
        torch.ScalarType.Float64 => "float64",
        _ => t.ToString().ToLowerInvariant(),
    };
}
