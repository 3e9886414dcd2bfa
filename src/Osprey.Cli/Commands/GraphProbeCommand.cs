using System.Globalization;
using System.Text.Json;
using Osprey.Cli.Args;
using Osprey.Diagnostics;
using Osprey.Models;
using Osprey.Options;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey graph-probe</c> (diagnostic): checks CUDA graph capture and replay from .NET on a toy op chain
/// and on one static-shape greedy decode step of a model, and times eager vs replayed decoding. The measuring is
/// <see cref="GraphProbe"/>'s; this verb parses flags and prints.
/// </summary>
internal sealed class GraphProbeCommand : ICommand
{
    public string Name => "graph-probe";

    public string Summary => "Diagnostic: CUDA graph capture/replay of a toy op chain and of one decode step (eager vs graph timing).";

    public string Usage => OptionSet.For<GraphProbeOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var o = options.Bind<GraphProbeOptions>();
        options.EnsureNoUnknownFlags();
        var (batches, prompt, newTokens, skipModel, resultPath) = (o.BatchSizes, o.PromptLength, o.MaxNewTokens, o.SkipModel, o.ResultPath);
        var flags = new ModelFlags(o.Model);
        TorchRuntime.Initialize(flags.Device, stderr);
        if (!CudaGraph.IsSupported(out var why))
        {
            stdout.WriteLine($"CUDA graphs not supported: {why}");
            return 2;
        }
        stdout.WriteLine($"CUDA graphs: {CudaGraph.Binding}");
        stdout.Flush();
        var toy = GraphProbe.Toy();
        stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "toy: capture {0:F1} ms, max |replay - eager| after 3 new inputs = {1:G3} ({2}), 7-op chain {3:F1} µs eager vs {4:F1} µs replay",
            toy.CaptureMilliseconds, toy.MaxError, toy.Matches ? "OK" : "MISMATCH", toy.EagerMicroseconds, toy.ReplayMicroseconds));
        stdout.Flush();
        if (skipModel) return 0;
        var folder = flags.RequireFolder();
        using var model = CausalLM.Load(folder, flags.LoadOptions(stderr));
        stdout.WriteLine($"model {folder} on {model.Device} in {DTypes.Name(model.DType)}");
        stdout.WriteLine("batch  ref_ms/step  static_eager_ms/step  graph_ms/step  graph_tok/s  capture_ms  graph_extra_MiB  graph==static  graph==ref");
        stdout.Flush();
        foreach (var b in batches)
        {
            var r = GraphProbe.Decode(model, b, prompt, newTokens);
            if (r.RefAgree < 1) stdout.WriteLine($"  first ref/graph difference: {r.FirstMismatch}");
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "  teacher-forced static vs ref: {0}/{1} argmax agree, largest logit gap where they differ {2:G3}",
                r.TeacherForcedAgree, r.TeacherForcedTotal, r.TeacherForcedGap));
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,5}  {1,11:F3}  {2,20:F3}  {3,13:F3}  {4,11:F1}  {5,10:F1}  {6,15:F1}  {7,13}  {8}",
                b, r.RefMs, r.StaticMs, r.GraphMs, b * 1000.0 / r.GraphMs, r.CaptureMs, r.ExtraMiB, r.GraphEqualsStatic ? "yes" : "NO", $"{r.RefAgree:P1}"));
            stdout.Flush();
            if (resultPath is not null)
                File.AppendAllText(resultPath, JsonSerializer.Serialize(new { model = folder, batch = b, prompt, newTokens, r.RefMs, r.StaticMs, r.GraphMs, r.CaptureMs, r.ExtraMiB, r.GraphEqualsStatic, r.RefAgree, r.FirstMismatch }) + "\n");
        }
        return 0;
    }
}
