using System.Globalization;
using Osprey.Cli.Args;
using Osprey.Runtime;
using TorchSharp;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey env</c>: what Osprey found on this machine.</summary>
internal sealed class EnvCommand : ICommand
{
    public string Name => "env";

    public string Summary => "Show Osprey and libtorch versions, the libtorch in use, CUDA devices and the default dtype.";

    public string Usage =>
        "  --device D               Device to probe: auto | cpu | cuda | cuda:N (default auto).\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var device = DeviceSpec.Parse(options.String("device", "auto"));
        options.EnsureNoUnknownFlags();
        var info = TorchRuntime.Initialize(device, stderr);
        var dtype = DTypes.Resolve("auto", null, info.Device);
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine($"osprey        {TorchRuntime.OspreyVersion}");
        stdout.WriteLine($"torchsharp    {typeof(torch).Assembly.GetName().Version}");
        stdout.WriteLine($"libtorch      {info.LibTorchVersion}");
        stdout.WriteLine($"libtorch path {info.LibTorchPath}");
        stdout.WriteLine($"device        {info.Device} (CUDA: {info.CudaNote})");
        var gpus = Nvml.Devices();
        if (gpus.Count == 0)
            stdout.WriteLine($"cuda devices  {(info.CudaDeviceCount > 0 ? info.CudaDeviceCount + " (no NVML for details)" : "none")}");
        foreach (var g in gpus)
            stdout.WriteLine(string.Format(inv, "cuda:{0,-8} {1}, {2:F1} GiB total, {3:F1} GiB in use", g.Index, g.Name, g.TotalBytes / 1073741824.0, g.UsedBytes / 1073741824.0));
        if (info.CudaDeviceCount > 0)
            stdout.WriteLine($"attention     flash {(torch.backends.cuda.flash_sdp_enabled() ? "on" : "off")}, math {(torch.backends.cuda.math_sdp_enabled() ? "on" : "off")}, cuDNN {(TorchRuntime.CudnnAttentionDisabled ? "off (re-plans per KV length)" : "on")}");
        stdout.WriteLine($"default dtype {DTypes.Name(dtype)} (--torch_dtype auto on {info.Device.type.ToString().ToLowerInvariant()}; on a GPU auto uses the config's dtype)");
        stdout.WriteLine($"cpu threads   {torch.get_num_threads()}");
        return 0;
    }
}
