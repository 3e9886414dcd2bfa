using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Tests.Runtime;

public sealed class DeviceIdentityTests
{
    [Fact]
    public void TwoObjectsNamingOneDeviceAreTheSameDevice()
    {
        // The reason the helper exists: TorchSharp's Device compares objects.
        Assert.True(new Device("cuda:0") != new Device("cuda:0"));
        Assert.True(new Device("cuda:0").Is(new Device("cuda:0")));
        Assert.True(new Device("cuda").Is(new Device("cuda:0")));
        Assert.True(new Device("cpu").Is(CPU));
        Assert.False(new Device("cuda:1").Is(new Device("cuda:0")));
        Assert.False(new Device("cuda:0").Is(CPU));
    }
}
