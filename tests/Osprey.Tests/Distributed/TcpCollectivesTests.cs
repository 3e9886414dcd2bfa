using System.Net;
using System.Net.Sockets;
using Osprey.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Distributed;

/// <summary>
/// The CPU backend's collectives among three ranks on real sockets (127.0.0.1), one thread per rank, against sums and
/// layouts worked out by hand; and a rank that goes away is an error naming it instead of a hang.
/// </summary>
public sealed class TcpCollectivesTests
{
    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static DistributedEnvironment Env(int rank, int world, int port) => new() { IsWorker = true, Rank = rank, WorldSize = world, LocalRank = rank, LocalWorldSize = world, MasterPort = port };

    static T[] OnRanks<T>(int world, Func<ProcessGroup, T> body)
    {
        Osprey.Runtime.TorchRuntime.Initialize(Osprey.Runtime.DeviceSpec.Cpu);
        var port = FreePort();
        var tasks = Enumerable.Range(0, world).Select(r => Task.Factory.StartNew(() =>
        {
            using var group = ProcessGroup.Join(Env(r, world, port));
            return body(group);
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromSeconds(60)), "the ranks did not finish within 60 s");
        return tasks.Select(t => t.Result).ToArray();
    }

    [Fact]
    public void ThreeRanks_SumGatherScatterAndBroadcastAsWorkedOutByHand()
    {
        var results = OnRanks(3, group =>
        {
            var c = group.Collectives(CPU, TextWriter.Null);
            var r = c.Rank;
            // All-reduce: rank r holds [r+1, 10(r+1)] → [1+2+3, 10+20+30].
            using var a = tensor(new float[] { r + 1, 10 * (r + 1) });
            using var counts = tensor(new long[] { 1L << 40, r });
            c.AllReduceSum([a, counts]);
            // Reduce-scatter: rank r holds (r+1)·[1..6]; the sum is 6·[1..6]; rank r keeps elements 2r, 2r+1.
            using var rsIn = tensor(Enumerable.Range(1, 6).Select(i => (float)((r + 1) * i)).ToArray());
            using var rsOut = zeros(2);
            c.ReduceScatterSum(rsIn, rsOut);
            // All-gather: rank r gives [r, r] → [0, 0, 1, 1, 2, 2].
            using var agIn = full(2, (float)r);
            using var agOut = zeros(6);
            c.AllGather(agIn, agOut);
            // Broadcast from rank 2.
            using var b = r == 2 ? tensor(new float[] { 7, 8 }) : zeros(2);
            c.Broadcast(b, 2);
            var text = group.BroadcastText(r == 0 ? "from rank 0" : "ignored");
            return (a.data<float>().ToArray(), counts.data<long>().ToArray(), rsOut.data<float>().ToArray(), agOut.data<float>().ToArray(), b.data<float>().ToArray(), text);
        });
        for (var r = 0; r < 3; r++)
        {
            var (sum, counts, scattered, gathered, broadcast, text) = results[r];
            Assert.Equal([6f, 60f], sum);
            Assert.Equal([3L << 40, 0 + 1 + 2], counts);
            Assert.Equal(new[] { 6f * (2 * r + 1), 6f * (2 * r + 2) }, scattered);
            Assert.Equal([0f, 0, 1, 1, 2, 2], gathered);
            Assert.Equal([7f, 8f], broadcast);
            Assert.Equal("from rank 0", text);
        }
    }

    [Fact]
    public void StartedCollectives_RunInCallOrderWithTheSynchronousOnes_AndWaitGivesTheirResults()
    {
        // Rank r starts two all-reduces and an all-gather, runs a synchronous all-reduce, then waits: each result is the
        // sum (or layout) worked out by hand, so none was overtaken by a later operation on the shared sockets.
        var results = OnRanks(3, group =>
        {
            var c = group.Collectives(CPU, TextWriter.Null);
            var r = c.Rank;
            using var first = full(1000, (float)(r + 1));            // Σ = 6
            using var second = tensor(new float[] { 10 * (r + 1) }); // Σ = 60
            using var gatherIn = full(2, (float)r);
            using var gatherOut = zeros(6);
            var w1 = c.AllReduceSumAsync([first]);
            var w2 = c.AllReduceSumAsync([second]);
            var w3 = c.AllGatherAsync(gatherIn, gatherOut);
            using var now = tensor(new long[] { r });                 // Σ = 3, synchronous: after the three above
            c.AllReduceSum([now]);
            w3.Wait();
            w1.Wait();
            w2.Wait();
            w2.Wait(); // twice is harmless
            return (first.data<float>().Distinct().ToArray(), second.ToSingle(), gatherOut.data<float>().ToArray(), now.ToInt64());
        });
        foreach (var (first, second, gathered, now) in results)
        {
            Assert.Equal([6f], first);
            Assert.Equal(60f, second);
            Assert.Equal([0f, 0, 1, 1, 2, 2], gathered);
            Assert.Equal(3L, now);
        }
    }

    [Fact]
    public void AStartedCollectiveWhosePeerLeft_FailsAtWait_WithTheRankNamed()
    {
        var messages = OnRanks(2, group => group.Rank == 1 ? "" : Catch(() =>
        {
            using var t = zeros(4);
            var work = group.Collectives(CPU, TextWriter.Null).AllReduceSumAsync([t]);
            work.Wait();
        }));
        Assert.Contains("rank 1 closed its connection", messages[0]);
    }

    [Fact]
    public void ARankThatLeaves_IsNamedByTheOthers()
    {
        // Rank 1 leaves at once (its sockets close, as when its process dies); rank 0's next collective names it.
        var messages = OnRanks(2, group => group.Rank == 1 ? "" : Catch(() =>
        {
            using var t = zeros(4);
            group.Collectives(CPU, TextWriter.Null).AllReduceSum([t]);
        }));
        Assert.Contains("rank 1 closed its connection", messages[0]);
    }

    static string Catch(Action a)
    {
        try
        {
            a();
            return "no error";
        }
        catch (OspreyException e)
        {
            return e.Message;
        }
    }
}
