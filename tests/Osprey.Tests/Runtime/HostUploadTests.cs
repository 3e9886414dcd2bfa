using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Xunit;

namespace Osprey.Tests.Runtime;

public class HostUploadTests
{
    [Fact]
    public void UploadsTheArrayInItsShape()
    {
        long[] data = [5, -100, 7, 151935, 0, 3];
        using var t = HostUpload.Int64(data, [2, 3], CPU);
        Assert.Equal(ScalarType.Int64, t.dtype);
        Assert.Equal([2L, 3L], t.shape);
        Assert.Equal(data, t.data<long>().ToArray());
        // The pinned staging is for CUDA only: on the CPU the switch changes nothing.
        var before = HostUpload.Pinned;
        HostUpload.Pinned = true;
        try
        {
            using var again = HostUpload.Int64(data, [3, 2], CPU);
            Assert.Equal([3L, 2L], again.shape);
            Assert.Equal(data, again.data<long>().ToArray());
        }
        finally
        {
            HostUpload.Pinned = before;
        }
    }
}
