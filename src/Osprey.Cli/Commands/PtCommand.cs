using Osprey.Cli.Args;
using Osprey.Options;
using Osprey.Training;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey pt</c>: continued pre-training — <c>osprey sft</c> with loss on every token. Parse → <see cref="FineTuning.Pretrain"/> → print.</summary>
internal sealed class PtCommand : ICommand
{
    public string Name => "pt";

    public IReadOnlyList<Type> OptionsTypes => [typeof(SftOptions)];

    public string Summary => "Continue pre-training on text (loss on every token); same flags and outputs as sft.";

    public bool RunsOnSeveralDevices => true;

    public string Usage => OptionSet.For<SftOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<SftOptions>());

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var pt = options.Bind<SftOptions>();
        options.EnsureNoUnknownFlags();
        return TrainingConsole.Run((log, progress, cancel) => FineTuning.Pretrain(pt, log, progress, cancel, TrainingBenchmarks.Hook(pt, log)), stdout, stderr);
    }
}
