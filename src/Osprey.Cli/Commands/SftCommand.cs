using Osprey.Cli.Args;
using Osprey.Options;
using Osprey.Training;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey sft</c>: supervised fine-tuning with LoRA (PEFT adapters) or in full, ms-swift's flags and run layout.
/// Parse → <see cref="FineTuning.Sft"/> → print.
/// </summary>
internal sealed class SftCommand : ICommand
{
    public string Name => "sft";

    public IReadOnlyList<Type> OptionsTypes => [typeof(SftOptions)];

    public string Summary => "Fine-tune a model on chat or text data: LoRA/DoRA adapters or full training, with checkpoints and resume.";

    public bool RunsOnSeveralDevices => true;

    public string Usage => OptionSet.For<SftOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<SftOptions>());

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var sft = options.Bind<SftOptions>();
        options.EnsureNoUnknownFlags();
        return TrainingConsole.Run((log, progress, cancel) => FineTuning.Sft(sft, log, progress, cancel, TrainingBenchmarks.Hook(sft, log)), stdout, stderr);
    }
}
