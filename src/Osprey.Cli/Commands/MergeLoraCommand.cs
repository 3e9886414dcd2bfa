using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Models;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey merge-lora</c>: <c>osprey export --merge_lora true</c> under ms-swift's older verb name.</summary>
internal sealed class MergeLoraCommand : ICommand
{
    public string Name => "merge-lora";

    public string Summary => "Merge LoRA adapters into the base weights and save a Hugging Face folder (<adapter>-merged).";

    public string Usage => ModelFlags.Help + OptionSet.For<ExportOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<ModelOptions>(), OptionSet.For<ExportOptions>());

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => ExportCommand.Run(options, stdout, stderr, merge: true);
}
