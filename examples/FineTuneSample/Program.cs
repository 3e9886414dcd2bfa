using Osprey;
using Osprey.Training;

namespace FineTuneSample;

/// <summary>
/// Fine-tunes a model with LoRA through <see cref="FineTuning.Sft"/>, the call under <c>osprey sft</c>, and prints
/// where the adapter went. Usage: <c>FineTuneSample [MODEL] [DATASET] [OUTPUT_DIR] [STEPS]</c>; the defaults train the
/// built-in demo model on examples/datasets/memorize.jsonl for 100 steps into output/sample.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        try
        {
            return Run(args, Console.Out, Console.Error);
        }
        catch (OspreyException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    /// <summary>The sample itself: one library call, then the result.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter log)
    {
        var model = args.ElementAtOrDefault(0) ?? "demo";
        var dataset = args.ElementAtOrDefault(1) ?? "examples/datasets/memorize.jsonl";
        var outputDir = args.ElementAtOrDefault(2) ?? "output/sample";
        var steps = int.Parse(args.ElementAtOrDefault(3) ?? "100");

        var result = FineTuning.Sft(new SftOptions
        {
            Model = new() { Model = model, Device = "cpu" },
            Data = new() { Datasets = [dataset] },
            Trainer = new()
            {
                MaxSteps = steps,
                BatchSize = 4,
                LearningRate = 1e-2,
                Lora = new() { Rank = 16 },
            },
            OutputDir = outputDir,
        }, log);

        output.WriteLine($"adapter: {result.LastCheckpoint}");
        output.WriteLine($"logs: {Path.Combine(result.RunDirectory, "logging.jsonl")}");
        return 0;
    }
}
