using Osprey.Cli.Args;
using Osprey.Options;
using Osprey.Training;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey rlhf</c>: preference training (DPO, SimPO, CPO, ORPO on chosen/rejected pairs; KTO on labelled rows;
/// reward models), with every flag of <c>osprey sft</c>. Parse → <see cref="FineTuning.Rlhf"/> → print.
/// </summary>
internal sealed class RlhfCommand : ICommand
{
    public string Name => "rlhf";

    public IReadOnlyList<Type> OptionsTypes => [typeof(RlhfOptions)];

    // dpo, simpo, cpo, orpo, kto and rm train data parallel (grpo/ppo refuse several ranks with a reason, per worker).
    public bool RunsOnSeveralDevices => true;

    public string Summary => "Preference training: DPO, SimPO, CPO, ORPO and reward models on chosen/rejected pairs, KTO on labelled rows; GRPO on prompts with reward functions.";

    public string Usage =>
        "Data: rows with chosen and rejected responses (\"prompt\"/\"chosen\"/\"rejected\", or messages plus\n" +
        "\"rejected_response\"); for KTO, messages plus \"label\" true/false (at least 2 per micro-batch). Loss on the\n" +
        "last response (--loss_scale last_round). GRPO (--rlhf_type grpo): prompt rows (messages ending with a user turn;\n" +
        "other columns such as \"solution\" reach the reward functions), scored by --reward_funcs/--reward_url/--reward_model.\n\n" +
        OptionSet.For<RlhfOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<RlhfOptions>());

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var rlhf = options.Bind<RlhfOptions>();
        options.EnsureNoUnknownFlags();
        return TrainingConsole.Run((log, progress, cancel) => FineTuning.Rlhf(rlhf, log, progress, cancel, TrainingBenchmarks.Hook(rlhf.FineTune, log)), stdout, stderr);
    }
}
