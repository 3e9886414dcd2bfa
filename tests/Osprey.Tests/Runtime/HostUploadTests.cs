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

    [Fact]
    public void CopiesIntoAnExistingTensor_AndTheArrayMayBeReusedAtOnce()
    {
        using var target = zeros(3, 1, dtype: ScalarType.Int64);
        long[] data = [4, 8, 15];
        HostUpload.CopyInto(target, data, pinned: true); // pinned staging is for CUDA: on the CPU a plain copy
        data[0] = 99;
        Assert.Equal([4L, 8L, 15L], target.data<long>().ToArray());
        using var again = HostUpload.Int64(data, [3], CPU, pinned: true);
        Assert.Equal([99L, 8L, 15L], again.data<long>().ToArray());
        data[1] = -1;
        Assert.Equal([99L, 8L, 15L], again.data<long>().ToArray());
    }
}
