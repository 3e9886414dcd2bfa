using System.Globalization;
using Osprey.Cli.Args;
using Osprey.Options;
using Osprey.Training.MemoryFit;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey estimate</c>: predicted peak GPU memory of a training run by component, from config.json and the flags
/// sft takes (<see cref="MemoryAdvisor.Estimate"/>); no weights are loaded.
/// </summary>
internal sealed class EstimateCommand : ICommand
{
    public string Name => "estimate";

    public IReadOnlyList<Type> OptionsTypes => [typeof(EstimateOptions)];

    public string Summary => "Predict peak GPU memory of sft with these flags, by component (reads config.json only).";

    public string Usage => OptionSet.For<EstimateOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var o = options.Bind<EstimateOptions>();
        options.EnsureNoUnknownFlags();
        var (e, plan, spec) = MemoryAdvisor.Estimate(o, stderr);
        var inv = CultureInfo.InvariantCulture;
        var quant = plan.QuantBits == 0 ? "no quantization" : plan.QuantBits == 4 ? $"4-bit{(plan.DoubleQuant ? " + double quant" : "")}" : "8-bit";
        var train = plan.TrainType == Training.TrainType.Lora ? $"LoRA r{plan.LoraRank} on {string.Join(" ", plan.TargetModules)}" : "full";
        stdout.WriteLine($"{spec.ModelType}, {spec.Layers.Count} layers, hidden {spec.HiddenSize}; {train}, {quant}, {plan.DTypeBytes}-byte dtype, batch {plan.BatchSize} × {plan.MaxLength} tokens, gradient checkpointing {(plan.GradientCheckpointing ? "on" : "off")}");
        stdout.WriteLine($"trainable parameters {e.TrainableParameters.ToString("N0", inv)}");
        void Row(string name, long bytes) => stdout.WriteLine(string.Format(inv, "{0,-34} {1,9:F2} GiB", name, bytes / 1073741824.0));
        Row("weights", e.Weights);
        Row("adapters", e.Adapters);
        Row("gradients", e.Gradients);
        Row("optimizer state (AdamW, fp32)", e.OptimizerState);
        Row("activations kept", e.KeptActivations);
        Row("layer recompute / backward", e.LayerRecompute);
        Row("loss chunk", e.LossChunk);
        Row("optimizer step workspace", e.StepWorkspace);
        Row("CUDA context", e.CudaContext);
        Row("peak", e.Peak);
        return 0;
    }
}
