using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Runtime;

/// <summary>
/// <c>--device</c> and <c>--torch_dtype</c> parsing, dtype resolution, and <see cref="TorchRuntime.Initialize"/>
/// on this CPU-only test machine. libtorch loads once per process, so every test that initialises asks for the
/// CPU first; the CUDA request is then checked through the error it must give.
/// </summary>
public sealed class RuntimeParsingTests
{
    public static TheoryData<string?, DeviceKind, int> Devices() => new()
    {
        { "auto", DeviceKind.Auto, 0 },
        { "AUTO", DeviceKind.Auto, 0 },
        { "", DeviceKind.Auto, 0 },
        { null, DeviceKind.Auto, 0 },
        { "cpu", DeviceKind.Cpu, 0 },
        { " cpu ", DeviceKind.Cpu, 0 },
        { "cuda", DeviceKind.Cuda, 0 },
        { "gpu", DeviceKind.Cuda, 0 },
        { "cuda:1", DeviceKind.Cuda, 1 },
        { "CUDA:0", DeviceKind.Cuda, 0 },
        { "cuda:12", DeviceKind.Cuda, 12 },
    };

    [Theory]
    [MemberData(nameof(Devices))]
    public void DeviceSpecParsesTheKnownForms(string? text, DeviceKind kind, int index)
    {
        var spec = DeviceSpec.Parse(text);
        Assert.Equal(new DeviceSpec(kind, index), spec);
        // The canonical spelling parses back to the same spec.
        Assert.Equal(spec, DeviceSpec.Parse(spec.ToString()));
    }

    [Fact]
    public void DeviceSpecNamesHaveTheirCanonicalSpelling()
    {
        Assert.Equal("auto", DeviceSpec.Auto.ToString());
        Assert.Equal("cpu", DeviceSpec.Cpu.ToString());
        Assert.Equal("cuda:0", DeviceSpec.Parse("cuda").ToString());
        Assert.Equal("cuda:3", DeviceSpec.Parse("Cuda:3").ToString());
        Assert.Same(DeviceSpec.Cpu, DeviceSpec.Parse("cpu"));
    }

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("cuda:")]
    [InlineData("cpu:0")]
    [InlineData("mps")]
    public void DeviceSpecRejectsOtherTextNamingIt(string text)
    {
        var e = Assert.Throws<OspreyException>(() => DeviceSpec.Parse(text));
        Assert.Contains($"'{text}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("--device", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bfloat16", ScalarType.BFloat16)]
    [InlineData("bf16", ScalarType.BFloat16)]
    [InlineData("torch.bfloat16", ScalarType.BFloat16)]
    [InlineData(" BF16 ", ScalarType.BFloat16)]
    [InlineData("float16", ScalarType.Float16)]
    [InlineData("fp16", ScalarType.Float16)]
    [InlineData("half", ScalarType.Float16)]
    [InlineData("torch.float16", ScalarType.Float16)]
    [InlineData("float32", ScalarType.Float32)]
    [InlineData("fp32", ScalarType.Float32)]
    [InlineData("float", ScalarType.Float32)]
    [InlineData("Torch.Float32", ScalarType.Float32)]
    public void DTypesParseAcceptsTheAliases(string text, ScalarType expected) =>
        Assert.Equal(expected, DTypes.Parse(text));

    [Theory]
    [InlineData("int8")]
    [InlineData("float64")]
    [InlineData("torch.")]
    [InlineData("auto")]
    public void DTypesParseRejectsOtherNamesNamingThem(string text)
    {
        var e = Assert.Throws<OspreyException>(() => DTypes.Parse(text));
        Assert.Contains($"'{text}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("--torch_dtype", e.Message, StringComparison.Ordinal);

        var fromConfig = Assert.Throws<OspreyException>(() => DTypes.Parse(text, "config.json dtype"));
        Assert.StartsWith("config.json dtype", fromConfig.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bfloat16", ScalarType.BFloat16)]
    [InlineData("float16", ScalarType.Float16)]
    [InlineData("float32", ScalarType.Float32)]
    public void DTypesNameRoundTrips(string name, ScalarType type)
    {
        Assert.Equal(name, DTypes.Name(type));
        Assert.Equal(type, DTypes.Parse(DTypes.Name(type)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("bfloat16")]
    [InlineData("float16")]
    [InlineData("float32")]
    public void AutoOnTheCpuIsFloat32WhateverTheConfigSays(string? configDtype)
    {
        Assert.Equal(ScalarType.Float32, DTypes.Resolve("auto", configDtype, CPU));
        Assert.Equal(ScalarType.Float32, DTypes.Resolve(null, configDtype, CPU));
        Assert.Equal(ScalarType.Float32, DTypes.Resolve(" Auto ", configDtype, CPU));
    }

    [Fact]
    public void ExplicitDTypeWinsOverTheConfig()
    {
        Assert.Equal(ScalarType.BFloat16, DTypes.Resolve("bfloat16", "float32", CPU));
        Assert.Equal(ScalarType.BFloat16, DTypes.Resolve("bfloat16", null, CPU));
        Assert.Equal(ScalarType.Float16, DTypes.Resolve("fp16", "bfloat16", CPU));
        var e = Assert.Throws<OspreyException>(() => DTypes.Resolve("int4", "bfloat16", CPU));
        Assert.Contains("--torch_dtype 'int4'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoOnCudaFollowsTheConfig()
    {
        // Resolve only looks at the device's type; no GPU is needed to describe one.
        var cuda = new Device(DeviceType.CUDA, 0);
        Assert.Equal(ScalarType.Float16, DTypes.Resolve("auto", "float16", cuda));
        Assert.Equal(ScalarType.Float32, DTypes.Resolve("auto", "float32", cuda));
        Assert.Equal(ScalarType.BFloat16, DTypes.Resolve("auto", null, cuda));
        Assert.Equal(ScalarType.Float32, DTypes.Resolve("float32", "bfloat16", cuda));
        var e = Assert.Throws<OspreyException>(() => DTypes.Resolve("auto", "int8", cuda));
        Assert.Contains("config.json dtype 'int8'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InitializeOnTheCpuUsesTheBundledLibTorch()
    {
        var info = TorchRuntime.Initialize(DeviceSpec.Cpu);
        Assert.Equal(DeviceType.CPU, info.Device.type);
        Assert.True(File.Exists(Path.Combine(info.LibTorchPath, "libtorch_cpu.so")), $"no libtorch_cpu.so in {info.LibTorchPath}");
        Assert.Equal(TorchRuntime.BundledLibTorchVersion, info.LibTorchVersion);
        Assert.Equal(0, info.CudaDeviceCount);
        Assert.NotNull(TorchRuntime.Current);
        Assert.Equal(info.LibTorchPath, TorchRuntime.Current!.LibTorchPath);

        // A second call loads nothing new and agrees; auto falls back to the CPU on this machine.
        Assert.Equal(info, TorchRuntime.Initialize(DeviceSpec.Cpu));
        Assert.Equal(DeviceType.CPU, TorchRuntime.Initialize(DeviceSpec.Auto).Device.type);
    }

    [Theory]
    [InlineData("cuda")]
    [InlineData("cuda:1")]
    public void AskingForCudaAfterACpuLoadSaysWhy(string device)
    {
        // The test process has loaded the CPU libtorch; a CUDA request can no longer be honoured and the error says
        // why. Which reason depends on the process's first load, made by whichever test ran first: a CPU load says
        // libtorch was loaded for the CPU; an auto load (an in-process CLI test's default device) already looked for
        // CUDA on this GPU-less machine and says no CUDA GPU is usable.
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        var spec = DeviceSpec.Parse(device);
        var e = Assert.Throws<OspreyException>(() => TorchRuntime.Initialize(spec));
        Assert.Contains($"--device {spec}", e.Message, StringComparison.Ordinal);
        Assert.True(e.Message.Contains("loaded for the CPU", StringComparison.Ordinal) || e.Message.Contains("no CUDA GPU is usable", StringComparison.Ordinal),
            $"the error names no reason: {e.Message}");
        // The failed request leaves the CPU runtime usable.
        Assert.Equal(DeviceType.CPU, TorchRuntime.Initialize(DeviceSpec.Cpu).Device.type);
    }
}
