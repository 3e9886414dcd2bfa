using Osprey.Cli.Args;
using Osprey.Io;
using Osprey.Models;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey export</c>: re-save a model folder, optionally in another dtype and with another shard size.
/// The output is a Hugging Face folder that transformers loads. (Merging adapters and quantizing arrive
/// with their issues.)
/// </summary>
internal sealed class ExportCommand : ICommand
{

    public string Name => "export";

    public string Summary => "Re-save a model as a Hugging Face folder (dtype, sharding), or encode datasets into a cached-dataset folder.";

    public string Usage => ModelFlags.Help + AdapterFlags.Help +
        "  --merge_lora BOOL        Merge --adapters into the weights and save the result (default output <adapter>-merged).\n" +
        "  --output_dir DIR         Folder to write (created; existing weights there are replaced).\n" +
        "  --max_shard_size SIZE    Largest safetensors shard, e.g. 5GB, 500MB, 2GiB (default 5GB).\n" +
        "  --to_cached_dataset BOOL Instead: encode --dataset (and --val_dataset) with the model's tokenizer and\n" +
        "                           template into --output_dir as a cached dataset (train.bin, val.bin) for training.\n" +
        "                           Takes the flags of osprey encode (--template, --max_length, --packing, ...).\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        if (options.Bool("to_cached_dataset", false))
        {
            // ms-swift: swift export --to_cached_dataset true --dataset ... --output_dir DIR
            return EncodeCommand.Run(options, stdout, stderr, options.RequiredString("output_dir"));
        }
        return Run(options, stdout, stderr, options.Bool("merge_lora", false));
    }

    /// <summary>The export itself; <paramref name="merge"/> means merge --adapters (osprey merge-lora, --merge_lora true).</summary>
    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, bool merge)
    {
        var flags = ModelFlags.Read(options);
        var adapters = AdapterFlags.Read(options);
        var outputFlag = options.String("output_dir");
        var shardText = options.String("max_shard_size", "5GB");
        options.EnsureNoUnknownFlags();
        if (merge && !adapters.Any) throw new UserError("--merge_lora needs --adapters DIR (a LoRA checkpoint).");
        if (!merge && adapters.Any) throw new UserError("--adapters is given without --merge_lora true; add it to write the merged model.");
        (flags, _) = adapters.Resolve(flags, null);
        var output = outputFlag ?? (merge ? Path.TrimEndingDirectorySeparator(adapters.Paths[^1]) + "-merged" : throw new UserError("--output_dir is required; pass the folder to write."));
        long shard;
        try { shard = SafetensorsWriter.ParseSize(shardText); }
        catch (ArgumentException e) { throw new UserError(e.Message, e); }
        var folder = flags.RequireFolder();
        if (Path.GetFullPath(folder).TrimEnd('/') == Path.GetFullPath(output).TrimEnd('/'))
            throw new UserError("--output_dir is the --model folder; write the export to a new folder.");

        // Export runs on the CPU unless asked otherwise: it only moves bytes.
        var load = flags.LoadOptions(stderr) with { Device = flags.Device.Kind == Runtime.DeviceKind.Auto ? Runtime.DeviceSpec.Cpu : flags.Device };
        if (flags.DType == "auto") load = load with { DType = ModelRegistry.ReadSpec(folder).SavedDType ?? "float32" };
        using var model = adapters.Load(folder, load, stderr);
        var written = model.Save(output, shard).ToList();
        written.AddRange(ModelFolder.CopyTokenizerFiles(folder, output));
        stdout.WriteLine($"osprey: wrote {output} ({Runtime.DTypes.Name(model.DType)}): {string.Join(", ", written)}");
        return 0;
    }
}
