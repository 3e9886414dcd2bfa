using System.Diagnostics;
using Osprey.Io;
using Osprey.Tests.Cli.Commands;
using Osprey.Tests.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Reliability;

/// <summary>
/// <c>kill -9</c> (the OOM killer, a pre-empted node) while <c>osprey sft</c> writes a checkpoint: no
/// <c>checkpoint-N</c> folder is ever half-written, the interrupted <c>checkpoint-N.tmp</c> is never taken for a
/// checkpoint, resuming from the last complete one removes the leftover and reproduces an uninterrupted run bit for bit.
/// </summary>
public sealed class CheckpointKillTests
{
    static string Memorize => Path.Combine(TestPaths.RepoRoot, "examples", "datasets", "memorize.jsonl");

    static string[] Common(string model, string output) =>
        ["sft", "--device", "cpu", "--load_from_cache_file", "false", "--model", model, "--dataset", Memorize, "--max_steps", "3",
         "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--learning_rate", "1e-2",
         "--save_steps", "1", "--add_version", "false", "--output_dir", output];

    [Fact]
    public async Task KillDuringACheckpointSaveLeavesOnlyCompleteCheckpointsAndResumesBitIdentically()
    {
        if (OperatingSystem.IsWindows()) return; // no kill -9 nor FIFOs there
        using var temp = new TempDirectory();

        // The reference: the same run, never interrupted.
        var whole = CliRun.Of(Common(TestDemoModel.Folder, temp.File("whole")));
        Assert.True(whole.ExitCode == 0, whole.ToString());

        // The killed run's model folder is the demo model plus merges.txt as a FIFO. A checkpoint copies merges.txt
        // after the adapter and the other tokenizer files, so the save blocks there, half-written, until this test writes to the
        // FIFO: it does so once (checkpoint-1 completes) and never again (checkpoint-2 stays half-written). No hook in
        // Osprey, and a kill that certainly lands mid-save. Nothing reads merges.txt at load time (the tokenizer is
        // tokenizer.json).
        var model = temp.File("model");
        Directory.CreateDirectory(model);
        foreach (var file in Directory.GetFiles(TestDemoModel.Folder)) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        var fifo = Path.Combine(model, "merges.txt");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) { mkfifo.WaitForExit(); Assert.Equal(0, mkfifo.ExitCode); }
        var feed = Task.Factory.StartNew(() =>
        {
            using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write); // blocks until the child opens it
            writer.Write("#version: 0.2\n"u8);
        }, TaskCreationOptions.LongRunning);

        var run = temp.File("run");
        var tmp2 = Path.Combine(run, "checkpoint-2.tmp");
        using (var child = OspreyChild.Start(Common(model, run)))
        {
            try
            {
                await child.WaitUntil(() => File.Exists(Path.Combine(tmp2, "adapter_model.safetensors")), "checkpoint-2.tmp had its adapter");
                child.Signal("KILL");
                var (exit, _, _) = await child.Exit();
                Assert.Equal(128 + 9, exit); // killed by signal 9: nothing ran after it
            }
            finally
            {
                // If the child never opened the FIFO, open it here so the feeding thread ends.
                if (!feed.IsCompleted) using (File.OpenRead(fifo)) { }
                await feed;
            }
        }

        // Only complete checkpoints carry the name; the interrupted save is a .tmp folder beside them.
        Assert.True(Directory.Exists(tmp2), "the kill did not land inside the checkpoint-2 save");
        Assert.False(File.Exists(Path.Combine(tmp2, "trainer_state.json"))); // written last: the save was cut short
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoint-2")));
        var named = Directory.GetDirectories(run, "checkpoint-*").Where(d => !d.EndsWith(".tmp", StringComparison.Ordinal)).ToArray();
        Assert.Equal([Path.Combine(run, "checkpoint-1")], named);
        foreach (var file in new[] { "adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors", "trainer_state.json", "merges.txt" })
            Assert.True(File.Exists(Path.Combine(run, "checkpoint-1", file)), file);

        // The half-written folder is never taken for a checkpoint.
        var fromTmp = CliRun.Of([.. Common(TestDemoModel.Folder, temp.File("ignored")), "--resume_from_checkpoint", tmp2]);
        Assert.True(fromTmp.ExitCode != 0, fromTmp.ToString());
        Assert.Contains("trainer_state.json", fromTmp.Stderr);

        // Resuming from the last complete checkpoint: --save_steps 3 saves step 3 only, never 2 again, so only the
        // writer's sweep of leftovers can remove checkpoint-2.tmp.
        var resumed = CliRun.Of([.. Common(TestDemoModel.Folder, temp.File("ignored")), "--save_steps", "3", "--resume_from_checkpoint", Path.Combine(run, "checkpoint-1")]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains("resuming", resumed.Stderr);
        Assert.Empty(Directory.GetDirectories(run, "*.tmp"));
        Assert.Equal(Losses(temp.File("whole")), Losses(run));
        var a = Tensors(Path.Combine(temp.File("whole"), "checkpoint-3", "adapter_model.safetensors"));
        var b = Tensors(Path.Combine(run, "checkpoint-3", "adapter_model.safetensors"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, values) in a) Assert.True(values.SequenceEqual(b[name]), $"{name} differs after resuming");
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
}
