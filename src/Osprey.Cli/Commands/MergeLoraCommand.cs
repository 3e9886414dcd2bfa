using Osprey.Cli.Args;

namespace Osprey.Cli.Commands;

/// <summary><c>osprey merge-lora</c>: <c>osprey export --merge_lora true</c> under ms-swift's older verb name.</summary>
internal sealed class MergeLoraCommand : ICommand
{
    public string Name => "merge-lora";

    public string Summary => "Merge LoRA adapters into the base weights and save a Hugging Face folder (<adapter>-merged).";

    public string Usage => ModelFlags.Help + AdapterFlags.Help +
        "  --output_dir DIR         Folder to write (default: <last adapter>-merged).\n" +
        "  --max_shard_size SIZE    Largest safetensors shard, e.g. 5GB (default 5GB).\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        options.Accept("merge_lora");
        return ExportCommand.Run(options, stdout, stderr, merge: true);
    }
}
