using System.Collections;
using Osprey.Datasets;
using Osprey.Distributed;
using Osprey.Training;

namespace Osprey.Tests.Distributed;

/// <summary>
/// The arithmetic of sharding, against hand-computed layouts: partitions of flat buffers, gradient buckets, which
/// micro-batches each rank trains on for 2–8 ranks, the torchrun environment and ms-swift's --deepspeed/--fsdp names.
/// </summary>
public sealed class ShardingArithmeticTests
{
    [Fact]
    public void Partition_PadsToAMultipleOfTheWorldAndGivesEachRankOneContiguousShard()
    {
        // 10 elements over 4 ranks: shards of ⌈10/4⌉ = 3, padded to 12; rank 3 holds element 9 and two pads.
        var p = new Partition(10, 4);
        Assert.Equal(3, p.ShardLength);
        Assert.Equal(12, p.PaddedLength);
        Assert.Equal([0L, 3, 6, 9], Enumerable.Range(0, 4).Select(r => p.Start(r)));
        Assert.Equal([3L, 3, 3, 1], Enumerable.Range(0, 4).Select(r => p.RealLength(r)));
        // 3 elements over 8 ranks: shards of 1; ranks 3–7 hold padding only.
        var small = new Partition(3, 8);
        Assert.Equal([1L, 1, 1, 0, 0, 0, 0, 0], Enumerable.Range(0, 8).Select(r => small.RealLength(r)));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(8)]
    public void Partition_CoversEveryElementExactlyOnce(int world)
    {
        foreach (var length in new long[] { 1, 7, 64, 1000, 1001 })
        {
            var p = new Partition(length, world);
            var covered = Enumerable.Range(0, world).SelectMany(r => Enumerable.Range(0, (int)p.RealLength(r)).Select(i => p.Start(r) + i)).ToList();
            Assert.Equal(Enumerable.Range(0, (int)length).Select(i => (long)i), covered);
            Assert.Equal(0, p.PaddedLength % world);
            Assert.True(p.PaddedLength - length < world, "padding is less than one element per rank");
        }
    }

    [Fact]
    public void Buckets_SplitTheBufferInOrderWithAShortLastOne()
    {
        Assert.Equal([(0L, 4L), (4L, 4L), (8L, 2L)], GradientBuckets.Layout(10, 4));
        Assert.Equal([(0L, 8L)], GradientBuckets.Layout(8, 8));
        Assert.Empty(GradientBuckets.Layout(0, 8));
        // DDP's 25 MiB of float32.
        Assert.Equal(6_553_600, GradientBuckets.DefaultBucketElements);
    }

    [Fact]
    public void MicroBatchesOfAStep_GoRoundRobinOverRanks()
    {
        // Seven micro-batches over three ranks: 0,3,6 | 1,4 | 2,5.
        int[] Owned(int rank) => Enumerable.Range(0, 7).Where(i => BatchPlan.IsOwnedBy(i, rank, 3)).ToArray();
        Assert.Equal([0, 3, 6], Owned(0));
        Assert.Equal([1, 4], Owned(1));
        Assert.Equal([2, 5], Owned(2));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(8)]
    public void RanksTogether_SeeTheOneDeviceRunsSamplesOfEveryStep(int world)
    {
        // 37 samples, batch 2, accumulation 3 per rank: the global step is one device's batch 2 × accumulation 3·world.
        var data = Enumerable.Range(0, 37).Select(i => new EncodedSample([i, i + 1], [i, i + 1], null)).ToList();
        var plan = new BatchPlan(data, 2, 3 * world, seed: 42);
        var seen = new List<int>();
        for (long step = 0; step < plan.StepsPerEpoch; step++)
        {
            var micro = plan.MicroBatchIndices(step);
            var perRank = Enumerable.Range(0, world).Select(r => micro.Where((_, i) => BatchPlan.IsOwnedBy(i, r, world)).ToList()).ToList();
            // Every micro-batch has exactly one owner, and ranks differ by at most one micro-batch.
            Assert.Equal(micro.Count, perRank.Sum(p => p.Count));
            Assert.True(perRank.Max(p => p.Count) - perRank.Min(p => p.Count) <= 1);
            // Rank r's k-th micro-batch is the one device's (k·world + r)-th.
            for (var r = 0; r < world; r++)
                for (var k = 0; k < perRank[r].Count; k++) Assert.Equal(micro[k * world + r], perRank[r][k]);
            seen.AddRange(perRank.SelectMany(p => p.SelectMany(m => m)));
        }
        // One epoch visits every sample once.
        Assert.Equal(Enumerable.Range(0, 37), seen.Order());
        Assert.Equal((long)Math.Ceiling(Math.Ceiling(37 / 2.0) / (3.0 * world)), plan.StepsPerEpoch);
    }

    [Fact]
    public void Environment_ReadsTorchrunsVariables()
    {
        var worker = DistributedEnvironment.From(new Hashtable { ["RANK"] = "5", ["WORLD_SIZE"] = "8", ["LOCAL_RANK"] = "1", ["LOCAL_WORLD_SIZE"] = "4", ["MASTER_ADDR"] = "node0", ["MASTER_PORT"] = "12345" });
        Assert.True(worker.IsWorker);
        Assert.False(worker.IsLaunchRequested);
        Assert.Equal((5, 8, 1, 4, "node0", 12345), (worker.Rank, worker.WorldSize, worker.LocalRank, worker.LocalWorldSize, worker.MasterAddress, worker.MasterPort));

        var launcher = DistributedEnvironment.From(new Hashtable { ["NPROC_PER_NODE"] = "4", ["NNODES"] = "2", ["NODE_RANK"] = "1" });
        Assert.True(launcher.IsLaunchRequested);
        Assert.Equal((4, 2, 1, 29500), (launcher.ProcessesPerNode!.Value, launcher.Nodes, launcher.NodeRank, launcher.MasterPort));

        var plain = DistributedEnvironment.From(new Hashtable());
        Assert.False(plain.IsWorker || plain.IsLaunchRequested);
        Assert.Equal(1, plain.WorldSize);

        var bad = Assert.Throws<OspreyException>(() => DistributedEnvironment.From(new Hashtable { ["RANK"] = "2", ["WORLD_SIZE"] = "2" }));
        Assert.Contains("RANK=2", bad.Message);
        Assert.Contains("NPROC_PER_NODE", Assert.Throws<OspreyException>(() => DistributedEnvironment.From(new Hashtable { ["NPROC_PER_NODE"] = "two" })).Message);
    }

    [Fact]
    public void DeepSpeedAndFsdpNames_MapToStages()
    {
        Assert.Equal(ShardingPlan.None, ShardingPlan.Resolve(null, null));
        Assert.Equal(ShardingPlan.None, ShardingPlan.Resolve("zero0", null));
        Assert.Equal(new ShardingPlan(ZeroStage.Zero2, false), ShardingPlan.Resolve("zero2", null));
        Assert.Equal(new ShardingPlan(ZeroStage.Zero2, true), ShardingPlan.Resolve("zero2_offload", null));
        Assert.Equal(new ShardingPlan(ZeroStage.Zero3, true), ShardingPlan.Resolve("zero3_offload", null));
        Assert.Equal(new ShardingPlan(ZeroStage.Zero3, false), ShardingPlan.Resolve(null, "full_shard auto_wrap"));
        Assert.Equal(new ShardingPlan(ZeroStage.Zero2, true), ShardingPlan.Resolve(null, "shard_grad_op offload"));
        using var temp = new TempDirectory();
        // DeepSpeed's own config layout (deepspeed.ai/docs/config-json): zero_optimization.stage and offload_optimizer.device.
        var json = temp.File("ds.json");
        File.WriteAllText(json, """{"train_batch_size": "auto", "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": true}}}""");
        Assert.Equal(new ShardingPlan(ZeroStage.Zero2, true), ShardingPlan.Resolve(json, null));
        Assert.Contains("zero3_offload", Assert.Throws<OspreyException>(() => ShardingPlan.Resolve("zero9", null)).Message);
        Assert.Contains("one of them", Assert.Throws<OspreyException>(() => ShardingPlan.Resolve("zero2", "full_shard")).Message);
    }
}
