using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

public sealed class TensorBoardWriterTests
{
    [Fact]
    public void FileName_FollowsTensorBoardPattern()
    {
        using var dir = new TempDirectory();
        using var w = new TensorBoardWriter(dir.File("runs"), () => 1700000000.75);
        var name = Path.GetFileName(w.FilePath);
        Assert.StartsWith("events.out.tfevents.1700000000.", name, StringComparison.Ordinal);
        Assert.True(name.Length > "events.out.tfevents.1700000000.".Length);
        Assert.Equal(Path.Combine(dir.File("runs"), name), w.FilePath);
    }

    [Fact]
    public void SameSecond_GetsDistinctFiles()
    {
        using var dir = new TempDirectory();
        using var a = new TensorBoardWriter(dir.Path, () => 100.0);
        using var b = new TensorBoardWriter(dir.Path, () => 100.0);
        Assert.NotEqual(a.FilePath, b.FilePath);
        Assert.Equal(a.FilePath + ".1", b.FilePath);
    }

    [Fact]
    public void FirstRecord_IsFileVersionEvent_ExactBytes()
    {
        using var dir = new TempDirectory();
        string path;
        using (var w = new TensorBoardWriter(dir.Path, () => 1.5)) path = w.FilePath;
        var records = EventFileReader.ReadRecords(path);
        var expected = new byte[] { 0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x1A, 13 }
            .Concat("brain.Event:2"u8.ToArray()).ToArray();
        Assert.Equal(expected, Assert.Single(records));
        // Whole file: uint64 length 24, masked CRC-32C of it, data, masked CRC-32C of the data.
        var file = File.ReadAllBytes(path);
        Assert.Equal(12 + 24 + 4, file.Length);
        Assert.Equal(new byte[] { 24, 0, 0, 0, 0, 0, 0, 0 }, file[..8]);
        Assert.Equal(Crc32C.Mask(Crc32C.Compute(file.AsSpan(0, 8))), BitConverter.ToUInt32(file, 8));
        Assert.Equal(Crc32C.Mask(Crc32C.Compute(expected)), BitConverter.ToUInt32(file, 36));
    }

    [Fact]
    public void ScalarEvent_ExactBytes()
    {
        using var dir = new TempDirectory();
        string path;
        using (var w = new TensorBoardWriter(dir.Path, () => 2.0))
        {
            w.AddScalar("a", 1.0f, 5);
            path = w.FilePath;
        }
        var records = EventFileReader.ReadRecords(path);
        Assert.Equal(2, records.Count);
        var expected = new byte[]
        {
            0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, // wall_time 2.0
            0x10, 0x05,                     // step 5
            0x2A, 0x0A,                     // summary, 10 bytes
            0x0A, 0x08,                     // Summary.value, 8 bytes
            0x0A, 0x01, (byte)'a',          // tag "a"
            0x15, 0, 0, 0x80, 0x3F,         // simple_value 1.0f
        };
        Assert.Equal(expected, records[1]);
    }

    [Fact]
    public void SessionStartEvent_ExactBytes()
    {
        using var dir = new TempDirectory();
        string path;
        using (var w = new TensorBoardWriter(dir.Path, () => 3.0))
        {
            w.AddSessionStart(7);
            path = w.FilePath;
        }
        // event.proto: Event.session_log is field 7 (wire type 2, key 0x3A); SessionLog.status is field 1, START = 1.
        var expected = new byte[]
        {
            0x09, 0, 0, 0, 0, 0, 0, 0x08, 0x40, // wall_time 3.0
            0x10, 0x07,                         // step 7
            0x3A, 0x02,                         // session_log, 2 bytes
            0x08, 0x01,                         // status START
        };
        Assert.Equal(expected, EventFileReader.ReadRecords(path)[1]);
    }

    [Fact]
    public void Scalars_RoundTrip()
    {
        using var dir = new TempDirectory();
        double clock = 1000;
        string path;
        using (var w = new TensorBoardWriter(dir.Path, () => clock))
        {
            for (int i = 0; i < 200; i++)
            {
                clock += 0.5;
                w.AddScalar("train/loss", 3.0f / (i + 1), i + 1);
                w.AddScalar("train/learning_rate", 1e-5f * i, i + 1);
            }
            w.AddScalar("eval/loss", float.NaN, 300);
            w.AddScalar("big/step", -2.5f, 1L << 40);
            w.AddSessionStart(7);
            path = w.FilePath;
        }
        var events = EventFileReader.ReadEvents(path);
        Assert.Equal(1 + 400 + 3, events.Count);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.Equal(1000, events[0].WallTime);
        Assert.Empty(events[0].Scalars);
        for (int i = 0; i < 200; i++)
        {
            var loss = events[1 + 2 * i];
            Assert.Equal(i + 1, loss.Step);
            Assert.Equal(1000 + 0.5 * (i + 1), loss.WallTime);
            Assert.Equal(("train/loss", 3.0f / (i + 1)), Assert.Single(loss.Scalars));
            var lr = events[2 + 2 * i];
            Assert.Equal(("train/learning_rate", 1e-5f * i), Assert.Single(lr.Scalars));
            Assert.Null(lr.FileVersion);
        }
        Assert.True(float.IsNaN(events[401].Scalars[0].Value));
        Assert.Equal(300, events[401].Step);
        Assert.Equal(1L << 40, events[402].Step);
        Assert.Equal(-2.5f, events[402].Scalars[0].Value);
        Assert.Equal(1, events[403].SessionStatus);
        Assert.Equal(7, events[403].Step);
    }

    [Fact]
    public void Flush_MakesEventsReadableWhileOpen()
    {
        using var dir = new TempDirectory();
        using var w = new TensorBoardWriter(dir.Path);
        w.AddScalar("x", 4f, 1);
        w.Flush();
        var events = EventFileReader.ReadEvents(w.FilePath);
        Assert.Equal(2, events.Count);
        Assert.Equal(4f, events[1].Scalars[0].Value);
    }

    [Fact]
    public void UseAfterDispose_Throws()
    {
        using var dir = new TempDirectory();
        var w = new TensorBoardWriter(dir.Path);
        w.Dispose();
        w.Dispose();
        Assert.Throws<ObjectDisposedException>(() => w.AddScalar("x", 1, 1));
    }
}
