using System.Globalization;
using System.Text.Json;
using Osprey.Io;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Reliability;
using Osprey.Training.Reporting;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Distributed;

/// <summary>
/// Real worker processes over the TCP backend (float32, the tiny qwen2 fixture, one thread each): two ranks with
/// batch b against one process with the same global batch (batch b, two accumulated micro-batches, so each
/// micro-batch has the same shape and the same kernels run), for data parallel, ZeRO-2 and ZeRO-3; world size 1 through the
/// launcher against a plain run; a resumed ZeRO-3 run; and a killed worker stopping the job with its rank named.
/// The reference is the one-process run: the gradient of two micro-batches is g₀ + g₁ whether autograd accumulates
/// it or rank 0 sums two ranks' tensors, so data parallel must match it bit for bit.
/// </summary>
public sealed class MultiProcessTrainingTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    static string[] Common(string output, params string[] more) =>
    [
        "sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", CliRun.Fixture("qwen2"), "--dataset", Memorize,
        "--max_steps", "4", "--per_device_train_batch_size", "1", "--logging_steps", "1", "--save_steps", "2",
        "--add_version", "false", "--output_dir", output, .. more,
    ];

    static async Task<(int ExitCode, string Stdout, string Stderr)> Osprey(string[] args, int processes)
    {
        var env = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" };
        if (processes > 0)
        {
            env["NPROC_PER_NODE"] = processes.ToString(CultureInfo.InvariantCulture);
            env["MASTER_PORT"] = TcpCollectivesTests.FreePort().ToString(CultureInfo.InvariantCulture);
        }
        using var child = OspreyChild.Start(args, env);
        var result = await child.Exit();
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stderr}");
        return result;
    }

    static double[] Losses(string run) =>
        TrainingLog.ReadJsonl(Path.Combine(run, "logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();

    static Dictionary<string, float[]> Tensors(string file)
    {
        using var f = SafetensorsFile.Open(file);
        var result = new Dictionary<string, float[]>();
        foreach (var e in f.Entries)
        {
            using var t = f.ReadTensor(e.Name);
            result[e.Name] = t.to_type(ScalarType.Float32).data<float>().ToArray();
        }
        return result;
    }

    [Fact]
    public async Task DataParallel_TwoRanksEqualOneProcessBitForBit_AndWorldSizeOneThroughTheLauncherToo()
    {
        using var temp = new TempDirectory();
        await Osprey(Common(temp.File("one"), "--gradient_accumulation_steps", "2"), processes: 0);
        var two = await Osprey(Common(temp.File("two"), "--gradient_accumulation_steps", "1"), processes: 2);
        await Osprey(Common(temp.File("launched"), "--gradient_accumulation_steps", "2"), processes: 1);

        Assert.Contains("starting 2 worker(s)", two.Stderr);
        Assert.Contains("rank 0 of 2 on cpu; data parallel", two.Stderr);
        // Every adapter matrix sits in a decoder layer, so all of them were all-reduced during the backward pass.
        var adapterElements = Elements(temp.File("two/checkpoint-4/adapter_model.safetensors"), _ => true);
        Assert.Equal((adapterElements, adapterElements), ReduceSplit(two.Stderr));
        var expected = Losses(temp.File("one"));
        Assert.Equal(4, expected.Length);
        Assert.Equal(expected, Losses(temp.File("two")));
        Assert.Equal(expected, Losses(temp.File("launched")));
        var a = Tensors(temp.File("one/checkpoint-4/adapter_model.safetensors"));
        var b = Tensors(temp.File("two/checkpoint-4/adapter_model.safetensors"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs between 2 ranks and 1 process");
        // Rank 1 wrote nothing of its own: one run folder, rank 0's.
        Assert.Equal(["checkpoint-2", "checkpoint-4"], Directory.GetDirectories(temp.File("two")).Select(Path.GetFileName).Where(n => n!.StartsWith("checkpoint", StringComparison.Ordinal)).Order());
    }

    [Fact]
    public async Task DataParallel_WithoutCheckpointing_ReducesEachLayerDuringTheBackwardPass_AndStillMatchesOneProcessBitForBit()
    {
        // No recompute: the backward pass runs layer by layer only so that each layer's gradients can be all-reduced
        // while the layers below are in their backward pass; it must still be the one-process computation, bit for bit.
        using var temp = new TempDirectory();
        string[] full = ["--train_type", "full", "--gradient_checkpointing", "false"];
        await Osprey(Common(temp.File("one"), [.. full, "--gradient_accumulation_steps", "2"]), processes: 0);
        var two = await Osprey(Common(temp.File("two"), [.. full, "--gradient_accumulation_steps", "1"]), processes: 2);

        Assert.Equal(Losses(temp.File("one")), Losses(temp.File("two")));
        var a = Tensors(temp.File("one/checkpoint-4/model.safetensors"));
        var b = Tensors(temp.File("two/checkpoint-4/model.safetensors"));
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs between 2 ranks and 1 process");
        // The decoder layers' weights were reduced during the backward pass; embeddings, final norm and head after it.
        var weights = temp.File("two/checkpoint-4/model.safetensors");
        var split = ReduceSplit(two.Stderr);
        Assert.Equal(Elements(weights, n => n.Contains(".layers.", StringComparison.Ordinal)), split.DuringBackward);
        Assert.Equal(Elements(weights, _ => true), split.Total);
        Assert.True(split.DuringBackward < split.Total);
    }

    [Theory]
    [InlineData("dpo", "preference.jsonl", "1")]
    [InlineData("kto", "kto.jsonl", "2")]
    public async Task PreferenceTraining_TwoRanksEqualOneProcessBitForBit_LossesMetricsAndAdapters(string type, string dataset, string batch)
    {
        // Offline preference recipes split each step's micro-batches over ranks as sft does; each micro-batch keeps its
        // share of the whole step as weight, so the ranks' loss and metric sums add up to the one-process values.
        using var temp = new TempDirectory();
        string[] Args(string output, string accumulation) =>
        [
            "rlhf", "--rlhf_type", type, "--device", "cpu", "--load_from_cache_file", "false", "--model", CliRun.Fixture("qwen2"),
            "--dataset", Path.Combine(TestPaths.RepoRoot, "examples", "datasets", dataset), "--max_steps", "3",
            "--per_device_train_batch_size", batch, "--gradient_accumulation_steps", accumulation, "--logging_steps", "1",
            "--save_steps", "3", "--add_version", "false", "--output_dir", output,
        ];
        await Osprey(Args(temp.File("one"), "2"), processes: 0);
        var two = await Osprey(Args(temp.File("two"), "1"), processes: 2);
        Assert.Contains("rank 0 of 2 on cpu; data parallel", two.Stderr);

        var expected = TrainingLog.ReadJsonl(temp.File("one/logging.jsonl")).Where(r => r.ContainsKey("loss")).ToList();
        var actual = TrainingLog.ReadJsonl(temp.File("two/logging.jsonl")).Where(r => r.ContainsKey("loss")).ToList();
        Assert.Equal(3, expected.Count);
        Assert.Equal(expected.Count, actual.Count);
        var metrics = expected[0].Keys.Where(k => k is "loss" or "grad_norm" || k.StartsWith("rewards/", StringComparison.Ordinal) || k.StartsWith("logps/", StringComparison.Ordinal) || k == "kl").ToList();
        Assert.Contains("rewards/chosen", metrics);
        for (var i = 0; i < expected.Count; i++)
            foreach (var k in metrics) Assert.True(expected[i][k].GetDouble() == actual[i][k].GetDouble(), $"step {i + 1} {k}: {actual[i][k]} on 2 ranks, {expected[i][k]} in one process");
        var a = Tensors(temp.File("one/checkpoint-3/adapter_model.safetensors"));
        var b = Tensors(temp.File("two/checkpoint-3/adapter_model.safetensors"));
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs between 2 ranks and 1 process");
    }

    /// <summary>The elements of the tensors in <paramref name="file"/> whose names pass <paramref name="include"/>.</summary>
    static long Elements(string file, Func<string, bool> include)
    {
        using var f = SafetensorsFile.Open(file);
        return f.Entries.Where(e => include(e.Name)).Sum(e => e.Shape.Aggregate(1L, (x, y) => x * y));
    }

    /// <summary>The numbers of rank 0's "all-reduced during the backward pass" line.</summary>
    static (long DuringBackward, long Total) ReduceSplit(string stderr)
    {
        var m = System.Text.RegularExpressions.Regex.Match(stderr, @"data parallel: ([\d,]+) of ([\d,]+) gradient elements .* during the backward pass");
        Assert.True(m.Success, "no overlap line in:\n" + stderr);
        return (long.Parse(m.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Zero2AndZero3_TwoRanksMatchOneProcess_AndZero3ResumesExactly()
    {
        using var temp = new TempDirectory();
        await Osprey(Common(temp.File("one"), "--train_type", "full", "--gradient_accumulation_steps", "2"), processes: 0);
        var expected = Losses(temp.File("one"));
        var reference = Tensors(temp.File("one/checkpoint-4/model.safetensors"));
        foreach (var stage in new[] { "zero2", "zero3" })
        {
            var run = await Osprey(Common(temp.File(stage), "--train_type", "full", "--gradient_accumulation_steps", "1", "--deepspeed", stage), processes: 2);
            Assert.Contains(stage == "zero2" ? "ZeRO-2" : "ZeRO-3", run.Stderr);
            // The update is element-wise on each shard, so only the clipping coefficient can differ: sharded runs take the
            // global norm as √(Σ shards' squared norms), a different float32 summation order than one norm over the whole
            // gradient, which moves the losses in the 7th significant digit on this model. 1e-5 relative bounds that.
            var actual = Losses(temp.File(stage));
            Assert.Equal(expected.Length, actual.Length);
            Assert.Equal(expected[0], actual[0]); // before any update the forward is the same computation
            for (var i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * Math.Abs(expected[i]), $"{stage} step {i + 1}: {actual[i]} vs {expected[i]}");
            // The checkpoint holds whole (consolidated) weights and optimizer state, as one process writes them.
            var weights = Tensors(temp.File($"{stage}/checkpoint-4/model.safetensors"));
            Assert.Equal(reference.Keys.Order(), weights.Keys.Order());
            foreach (var (name, values) in reference)
                Assert.True(values.Zip(weights[name]).All(p => Math.Abs(p.First - p.Second) <= 1e-4 * (1 + Math.Abs(p.First))), $"{stage}: {name} differs from one process");
            using var optimizer = SafetensorsFile.Open(temp.File($"{stage}/checkpoint-4/optimizer.safetensors"));
            foreach (var name in reference.Keys) Assert.True(optimizer.Contains(name + ".exp_avg"), name);
        }

        // Resuming the ZeRO-3 run (weights and optimizer state re-sharded from the consolidated checkpoint) continues exactly.
        CopyFolder(temp.File("zero3"), temp.File("resumed"));
        Directory.Delete(temp.File("resumed/checkpoint-4"), true);
        await Osprey(Common(temp.File("ignored"), "--train_type", "full", "--gradient_accumulation_steps", "1", "--deepspeed", "zero3",
            "--resume_from_checkpoint", temp.File("resumed/checkpoint-2")), processes: 2);
        Assert.Equal(Losses(temp.File("zero3")), Losses(temp.File("resumed")));
        var a = Tensors(temp.File("zero3/checkpoint-4/model.safetensors"));
        var b = Tensors(temp.File("resumed/checkpoint-4/model.safetensors"));
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs after resuming");
    }

    [Fact]
    public async Task AKilledWorker_StopsTheJobWithItsRankNamed_AndLeavesNoWorker()
    {
        using var temp = new TempDirectory();
        var env = new Dictionary<string, string>
        {
            ["OMP_NUM_THREADS"] = "1", ["NPROC_PER_NODE"] = "2",
            ["MASTER_PORT"] = TcpCollectivesTests.FreePort().ToString(CultureInfo.InvariantCulture),
        };
        using var launcher = OspreyChild.Start(Common(temp.File("run"), "--max_steps", "100000", "--save_strategy", "no"), env);
        var pid = LauncherPid(launcher);
        int[] workers = [];
        await launcher.WaitUntil(() => (workers = Children(pid)).Length == 2, "both workers started");
        var rank1 = workers.Single(w => File.ReadAllText($"/proc/{w}/environ").Split('\0').Contains("RANK=1"));
        var rank0 = workers.Single(w => w != rank1);
        using (var kill = System.Diagnostics.Process.Start("kill", ["-KILL", rank1.ToString(CultureInfo.InvariantCulture)])) kill.WaitForExit();

        var (exit, _, stderr) = await launcher.Exit();
        Assert.Equal(137, exit);
        Assert.Contains($"rank 1 (pid {rank1}) was killed by signal 9; stopping the other 1 worker(s).", stderr);
        Assert.False(Directory.Exists($"/proc/{rank0}") && !File.ReadAllText($"/proc/{rank0}/stat").Contains(") Z ", StringComparison.Ordinal), "rank 0 outlived the job");
    }

    [Fact]
    public async Task WorkersOfAKilledLauncher_StopOnTheirOwn()
    {
        using var temp = new TempDirectory();
        var env = new Dictionary<string, string>
        {
            ["OMP_NUM_THREADS"] = "1", ["NPROC_PER_NODE"] = "2",
            ["MASTER_PORT"] = TcpCollectivesTests.FreePort().ToString(CultureInfo.InvariantCulture),
        };
        using var launcher = OspreyChild.Start(Common(temp.File("run"), "--max_steps", "100000", "--save_strategy", "no"), env);
        int[] workers = [];
        await launcher.WaitUntil(() => (workers = Children(launcher.Pid)).Length == 2, "both workers started");
        // SIGKILL cannot be caught: the launcher cannot stop its workers, they must notice it is gone.
        launcher.Signal("KILL");
        await launcher.Exit();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (workers.Any(Alive) && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.False(workers.Any(Alive), "a worker outlived its launcher");
    }

    static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    static int LauncherPid(OspreyChild child) => child.Pid;

    /// <summary>The live processes whose parent is <paramref name="pid"/> (field 4 of /proc/N/stat).</summary>
    static int[] Children(int pid)
    {
        var result = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var candidate)) continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue;
            }
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields[0] != "Z" && fields[1] == pid.ToString(CultureInfo.InvariantCulture)) result.Add(candidate);
        }
        return [.. result];
    }

    static void CopyFolder(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to, StringComparison.Ordinal));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to, StringComparison.Ordinal));
    }
}
