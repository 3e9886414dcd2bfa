using Osprey.Cli.Args;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey pt</c>: continued pre-training — <c>osprey sft</c> with loss on every token (<c>--loss_scale all</c>).</summary>
internal sealed class PtCommand : ICommand
{
    public string Name => "pt";

    public string Summary => "Continue pre-training on text (loss on every token); same flags and outputs as sft.";

    public string Usage => SftCommand.Help(pretraining: true);

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => SftCommand.Run(options, stdout, stderr, pretraining: true);
}
