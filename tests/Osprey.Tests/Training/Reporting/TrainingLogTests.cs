using System.Text.Json;
using Osprey.Training.Reporting;

namespace Osprey.Tests.Training.Reporting;

public sealed class TrainingLogTests
{
    private static Dictionary<string, object?> Rec(long step, double loss, double lr) => new()
    {
        ["loss"] = loss,
        ["learning_rate"] = lr,
        ["global_step"] = step,
    };

    private static string EventFile(TempDirectory dir) => Assert.Single(Directory.GetFiles(dir.File("runs")));

    [Fact]
    public void Append_WritesJsonLines()
    {
        using var dir = new TempDirectory();
        using (var log = new TrainingLog(dir.Path))
        {
            log.Append(new Dictionary<string, object?>
            {
                ["loss"] = 0.1 + 0.2,
                ["grad_norm"] = double.NaN,
                ["up"] = double.PositiveInfinity,
                ["down"] = double.NegativeInfinity,
                ["tokens"] = 123L,
                ["epoch_int"] = 2,
                ["memory(GiB)"] = "1.5",
                ["done"] = false,
                ["none"] = null,
                ["global_step"] = 3L,
            });
            // Flushed at once: readable while the log is open.
            Assert.Single(TrainingLog.ReadJsonl(dir.File("logging.jsonl")));
        }
        var text = File.ReadAllText(dir.File("logging.jsonl"));
        Assert.Equal(
            "{\"loss\":0.30000000000000004,\"grad_norm\":\"nan\",\"up\":\"inf\",\"down\":\"-inf\",\"tokens\":123,\"epoch_int\":2,"
            + "\"memory(GiB)\":\"1.5\",\"done\":false,\"none\":null,\"global_step\":3}\n", text);
        var rec = Assert.Single(TrainingLog.ReadJsonl(dir.File("logging.jsonl")));
        Assert.Equal(0.1 + 0.2, rec["loss"].GetDouble());
        Assert.Equal("nan", rec["grad_norm"].GetString());
        Assert.Equal(3, rec["global_step"].GetInt64());
        Assert.Equal(JsonValueKind.False, rec["done"].ValueKind);
    }

    [Fact]
    public void TryWritePlots_AChartThatCannotBeWrittenIsAWarningNotAFailure()
    {
        using var dir = new TempDirectory();
        using var log = new TrainingLog(dir.Path);
        log.Append(new Dictionary<string, object?> { ["loss"] = 2.5, ["global_step"] = 1L });
        File.WriteAllText(dir.File("images"), "a file where the images folder goes");
        Assert.ThrowsAny<IOException>(() => log.WritePlots());
        var warnings = new StringWriter();
        Assert.Empty(log.TryWritePlots(warnings));
        Assert.Contains("warning: the curves in " + log.ImagesDirectory + " were not drawn", warnings.ToString());
        Assert.Single(TrainingLog.ReadJsonl(log.JsonlPath));
    }

    [Fact]
    public void Doubles_RoundTripExactly()
    {
        using var dir = new TempDirectory();
        var values = new[] { 1e-5, 1.0 / 3, 123456789.123456789, double.Epsilon, double.MaxValue, -0.0 };
        using (var log = new TrainingLog(dir.Path))
            for (int i = 0; i < values.Length; i++)
                log.Append(new Dictionary<string, object?> { ["v"] = values[i], ["global_step"] = (long)i + 1 });
        var read = TrainingLog.ReadJsonl(dir.File("logging.jsonl"));
        Assert.Equal(values, read.Select(r => r["v"].GetDouble()));
    }

    [Fact]
    public void Append_WritesTensorBoardScalars()
    {
        using var dir = new TempDirectory();
        using (var log = new TrainingLog(dir.Path))
        {
            log.Append(Rec(1, 2.5, 1e-4));
            log.Append(new Dictionary<string, object?> { ["eval_loss"] = 1.75, ["eval_token_acc"] = 0.5f, ["eval_runtime"] = 3, ["note"] = "x", ["flag"] = true, ["global_step"] = 1L });
            log.Append(new Dictionary<string, object?> { ["train_runtime"] = 100.0 }); // no step: jsonl only
            log.Append(Rec(2, double.NaN, 2e-4));
            Assert.Equal(dir.File("runs"), Path.GetDirectoryName(log.TensorBoardFile));
        }
        Assert.Equal(4, TrainingLog.ReadJsonl(dir.File("logging.jsonl")).Count);
        var events = EventFileReader.ReadEvents(EventFile(dir));
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        var scalars = events.Skip(1).Select(e => (e.Step, Assert.Single(e.Scalars).Tag, Assert.Single(e.Scalars).Value)).ToList();
        Assert.Equal(
            [
                (1L, "train/loss", 2.5f), (1L, "train/learning_rate", 1e-4f),
                (1L, "eval/loss", 1.75f), (1L, "eval/token_acc", 0.5f), (1L, "eval/runtime", 3f),
                (2L, "train/learning_rate", 2e-4f),
            ],
            scalars.Where(s => !float.IsNaN(s.Value)).ToList());
        var nan = Assert.Single(scalars, s => float.IsNaN(s.Value));
        Assert.Equal((2L, "train/loss"), (nan.Step, nan.Tag));
    }

    [Fact]
    public void Tags_AndPlotFileNames()
    {
        Assert.Equal("train/loss", TrainingLog.TagOf("loss"));
        Assert.Equal("eval/loss", TrainingLog.TagOf("eval_loss"));
        Assert.Equal("train/evaluation", TrainingLog.TagOf("evaluation"));
        Assert.Equal("train_learning_rate.png", TrainingLog.PlotFileName("learning_rate"));
        Assert.Equal("eval_loss.png", TrainingLog.PlotFileName("eval_loss"));
        Assert.Equal("eval_token_acc.png", TrainingLog.PlotFileName("eval_token_acc"));
    }

    [Fact]
    public void WritePlots_OnePngPerLoggedKey()
    {
        using var dir = new TempDirectory();
        using var log = new TrainingLog(dir.Path);
        Assert.Empty(log.WritePlots());
        for (int i = 1; i <= 30; i++)
        {
            var r = Rec(i, 3.0 / i, 1e-5 * i);
            r["token_acc"] = 0.5 + i / 100.0;
            r["epoch"] = i / 30.0; // logged but not plotted
            log.Append(r);
        }
        log.Append(new Dictionary<string, object?> { ["eval_loss"] = 1.0, ["global_step"] = 30L });
        var written = log.WritePlots().Select(Path.GetFileName).ToList();
        Assert.Equal(["train_loss.png", "train_learning_rate.png", "train_token_acc.png", "eval_loss.png"], written);
        Assert.Equal(written.Order(StringComparer.Ordinal), Directory.GetFiles(dir.File("images")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var pngs = PythonPngDecoder.DecodeAll([dir.File("images/train_loss.png"), dir.File("images/eval_loss.png")]);
        var loss = pngs[0];
        Assert.Equal((TrainingPlots.Width, TrainingPlots.Height), (loss.Width, loss.Height));
        Assert.True(loss.Near(TrainingPlots.Palette[0]).Count > 200, "the smoothed loss line");
        Assert.True(loss.Near(TrainingPlots.EvalColor).Count > 15, "the eval_loss point on the loss chart");
        Assert.True(pngs[1].Near(TrainingPlots.Palette[0]).Count > 15, "one point: one marker");
    }

    [Fact]
    public void Series_CollectsNumericValuesByStep()
    {
        using var dir = new TempDirectory();
        using var log = new TrainingLog(dir.Path);
        log.Append(Rec(5, 1.5, 0.1));
        log.Append(Rec(6, 1.25, 0.2));
        log.Append(new Dictionary<string, object?> { ["loss"] = 9.0 }); // no step: not plotted
        Assert.Equal([(5.0, 1.5), (6.0, 1.25)], log.Series("loss"));
        Assert.Empty(log.Series("grad_norm"));
        Assert.Empty(log.Series("global_step"));
    }

    [Fact]
    public void Resume_DropsLinesAfterTheStepAndContinuesTheCurves()
    {
        using var dir = new TempDirectory();
        using (var log = new TrainingLog(dir.Path))
        {
            for (int i = 1; i <= 10; i++) log.Append(Rec(i, 10 - i, 0.1));
            log.Append(new Dictionary<string, object?> { ["train_runtime"] = 5.0 });
        }
        Thread.Sleep(10);
        using (var log = new TrainingLog(dir.Path, resumeStep: 4))
        {
            var kept = TrainingLog.ReadJsonl(log.JsonlPath);
            Assert.Equal([1L, 2, 3, 4], kept.Where(r => r.ContainsKey("global_step")).Select(r => r["global_step"].GetInt64()));
            Assert.Equal(5, kept.Count); // the line without a step stays
            Assert.Equal([(1.0, 9.0), (2.0, 8.0), (3.0, 7.0), (4.0, 6.0)], log.Series("loss"));
            log.Append(Rec(5, 0.5, 0.1));
            Assert.Equal(5, log.Series("loss").Count);
            Assert.Equal((5.0, 0.5), log.Series("loss")[^1]);
            Assert.Contains("train_loss.png", log.WritePlots().Select(Path.GetFileName));

            var files = Directory.GetFiles(dir.File("runs")).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(2, files.Count);
            var resumed = EventFileReader.ReadEvents(log.TensorBoardFile);
            Assert.Equal("brain.Event:2", resumed[0].FileVersion);
            Assert.Equal((5L, 1), (resumed[1].Step, resumed[1].SessionStatus!.Value));
        }
        Assert.Equal(6, TrainingLog.ReadJsonl(dir.File("logging.jsonl")).Count);
        Assert.Equal(["logging.jsonl"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Reopen_WithoutResume_KeepsAndAppends()
    {
        using var dir = new TempDirectory();
        using (var log = new TrainingLog(dir.Path)) log.Append(Rec(1, 1, 1));
        var before = File.ReadAllText(dir.File("logging.jsonl"));
        using (var log = new TrainingLog(dir.Path))
        {
            Assert.Equal(before, File.ReadAllText(dir.File("logging.jsonl")));
            Assert.Single(log.Series("loss"));
            log.Append(Rec(2, 2, 2));
        }
        Assert.Equal(2, TrainingLog.ReadJsonl(dir.File("logging.jsonl")).Count);
    }

    [Fact]
    public void Resume_DropsACutShortLastLine()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("logging.jsonl"), "{\"loss\":1,\"global_step\":1}\n{\"loss\":2,\"glo");
        Assert.Single(TrainingLog.ReadJsonl(dir.File("logging.jsonl")));
        using (var log = new TrainingLog(dir.Path, resumeStep: 1))
            log.Append(Rec(2, 3, 0));
        Assert.Equal("{\"loss\":1,\"global_step\":1}\n{\"loss\":3,\"learning_rate\":0,\"global_step\":2}\n", File.ReadAllText(dir.File("logging.jsonl")));
    }

    [Fact]
    public void ReadJsonl_MalformedMiddleLine_Throws()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("x.jsonl"), "{\"a\":1}\nnot json\n{\"a\":2}\n");
        var e = Assert.Throws<InvalidDataException>(() => TrainingLog.ReadJsonl(dir.File("x.jsonl")));
        Assert.Contains("x.jsonl:2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadJsonl_SkipsBlankLinesAndCrLf()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("x.jsonl"), "{\"a\":1}\r\n\r\n{\"a\":2}\r\n\n");
        Assert.Equal([1, 2], TrainingLog.ReadJsonl(dir.File("x.jsonl")).Select(r => r["a"].GetInt32()));
    }

    [Fact]
    public void Append_FromManyThreads_KeepsLinesWhole()
    {
        using var dir = new TempDirectory();
        using (var log = new TrainingLog(dir.Path))
            Parallel.For(0, 200, i => log.Append(Rec(i + 1, i, i)));
        var read = TrainingLog.ReadJsonl(dir.File("logging.jsonl"));
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), read.Select(r => r["global_step"].GetInt64()).Order());
        Assert.Equal(1 + 400, EventFileReader.ReadEvents(EventFile(dir)).Count);
    }

    [Fact]
    public void UseAfterDispose_Throws()
    {
        using var dir = new TempDirectory();
        var log = new TrainingLog(dir.Path);
        log.Dispose();
        log.Dispose();
        Assert.Throws<ObjectDisposedException>(() => log.Append(Rec(1, 1, 1)));
    }
}
