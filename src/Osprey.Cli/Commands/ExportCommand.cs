using Osprey.Cli.Args;
using Osprey.Datasets;
using Osprey.Hub;
using Osprey.Io;
using Osprey.Models;
using Osprey.Options;
using Osprey.Quantization;
using Osprey.Tuners.Lora;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey export</c>: re-save a model folder, optionally in another dtype and with another shard size.
/// The output is a Hugging Face folder that transformers loads. (Merging adapters and quantizing arrive
/// with their issues.)
/// </summary>
internal sealed class ExportCommand : ICommand
{

    public string Name => "export";

    public IReadOnlyList<Type> OptionsTypes => [typeof(ModelOptions), typeof(ExportOptions)];

    public string Summary => "Re-save a model as a Hugging Face folder (dtype, sharding), or encode datasets into a cached-dataset folder.";

    public string Usage => ModelFlags.Help + OptionSet.For<ExportOptions>().Help() + OptionSet.NoEffectHelp(OptionSet.For<ModelOptions>(), OptionSet.For<ExportOptions>())
        + "\nCalibration data for --quant_method gptq|awq (as sft reads it):\n" + OptionSet.For<DatasetOptions>().Help() + OptionSet.For<TemplateEncodingOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        // Read before binding: with it the other flags are osprey encode's, not the export's.
        if (options.Bool("to_cached_dataset", false))
        {
            // ms-swift: swift export --to_cached_dataset true --dataset ... --output_dir DIR
            return EncodeCommand.Run(options, stdout, stderr, options.RequiredString("output_dir"));
        }
        return Run(options, stdout, stderr, merge: false);
    }

    /// <summary>The export itself; <paramref name="merge"/> means merge --adapters whatever --merge_lora says (osprey merge-lora).</summary>
    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, bool merge)
    {
        var flags = ModelFlags.Read(options);
        var export = options.Bind<ExportOptions>();
        // --quant_method gptq|awq|fp8: load the model dense, quantize it (calibrating on --dataset) and write that.
        QuantizedExportSettings? quantize = null;
        DatasetOptions? calibrationData = null;
        TemplateEncodingOptions? calibrationEncoding = null;
        if (QuantizedExportSettings.IsExportMethod(flags.Options.Quantization.QuantMethod))
        {
            quantize = QuantizedExportSettings.From(flags.Options.Quantization, export);
            flags = new ModelFlags(flags.Options with { Quantization = new QuantizationOptions() });
            if (quantize.NeedsCalibration)
            {
                calibrationData = options.Bind<DatasetOptions>();
                calibrationEncoding = options.Bind<TemplateEncodingOptions>();
            }
            merge |= export.Adapters.Count > 0; // adapters are merged before quantizing
        }
        options.EnsureNoUnknownFlags();
        // Only osprey merge-lora gets here with it: export took the cached-dataset path before binding.
        if (export.ToCachedDataset) throw new UserError("--to_cached_dataset is a flag of osprey export, not merge-lora; run osprey export --to_cached_dataset true.");
        merge |= export.MergeLora;
        var outputFlag = export.OutputDir;
        var shardText = export.MaxShardSize;
        var adapters = export.Adapters;
        if (merge && adapters.Count == 0) throw new UserError("--merge_lora needs --adapters DIR (a LoRA checkpoint).");
        if (!merge && !export.ToGguf && adapters.Count > 0) throw new UserError("--adapters is given without --merge_lora true; add it to write the merged model.");
        flags = new ModelFlags(AdapterBaseModel.Resolve(adapters, flags.Options, null).Model);
        var output = outputFlag ?? (merge ? Path.TrimEndingDirectorySeparator(adapters[^1]) + "-merged" : throw new UserError("--output_dir is required; pass the folder to write."));
        long shard;
        try { shard = SafetensorsWriter.ParseSize(shardText); }
        catch (ArgumentException e) { throw new UserError(e.Message, e); }
        HubUpload.CheckBeforeRun(export.Push, flags.Options.UseHf, flags.Options.HubToken);
        var folder = flags.RequireFolder();
        if (Path.GetFullPath(folder).TrimEnd('/') == Path.GetFullPath(output).TrimEnd('/'))
            throw new UserError("--output_dir is the --model folder; write the export to a new folder.");

        // Export runs on the CPU unless asked otherwise: it only moves bytes.
        // A quantized export calibrates: there the GPU (when --device auto finds one) does the work.
        var load = flags.LoadOptions(stderr) with { Device = flags.Device.Kind == Runtime.DeviceKind.Auto && quantize is null ? Runtime.DeviceSpec.Cpu : flags.Device };
        if (flags.DType == "auto") load = load with { DType = ModelRegistry.ReadSpec(folder).SavedDType ?? "float32" };

        using var cancel = new CancellationTokenSource();
        // Ctrl-C or SIGTERM stops between tensors; a second signal quits at once (leaving only the .tmp folder).
        using var signals = new StopSignals(() =>
        {
            if (cancel.IsCancellationRequested) return false;
            cancel.Cancel();
            return true;
        });
        // A new folder is written as <output>.tmp and renamed when complete, so a stopped or failed export never
        // leaves a folder under the final name. An existing folder is updated file by file (each renamed into
        // place only after every shard is written), as before.
        if (export.ToOllama && !export.ToGguf) throw new UserError("--to_ollama true writes a Modelfile for a GGUF; add --to_gguf true.");
        if (export.ToGguf) return WriteGguf(folder, output, export.GgufQuant, export.ToOllama, load, adapters, stdout, stderr, cancel);
        var fresh = !Directory.Exists(output);
        var target = fresh ? Path.TrimEndingDirectorySeparator(output) + ".tmp" : output;
        try
        {
            if (fresh && Directory.Exists(target)) Directory.Delete(target, recursive: true); // left by a killed export
            using var model = MergedAdapters.Load(folder, load, adapters, stderr);
            cancel.Token.ThrowIfCancellationRequested();
            if (quantize is not null)
            {
                IReadOnlyList<int[]> samples = [];
                var heldOut = 0;
                if (quantize.NeedsCalibration)
                {
                    // An extra eighth of the samples is held out to report each layer's error against round-to-nearest.
                    samples = CalibrationSamples.Load(calibrationData!, calibrationEncoding!, folder, export.QuantNSamples + Math.Max(1, export.QuantNSamples / 8), stderr);
                    heldOut = Math.Max(0, samples.Count - export.QuantNSamples);
                }
                CalibratedQuantizer.Quantize(model, samples, heldOut, quantize, stderr);
                cancel.Token.ThrowIfCancellationRequested();
            }
            var written = model.Save(target, shard, cancel.Token).ToList();
            written.AddRange(ModelFolder.CopyTokenizerFiles(folder, target));
            if (fresh) Directory.Move(target, output);
            stdout.WriteLine($"osprey: wrote {output} ({Runtime.DTypes.Name(model.DType)}): {string.Join(", ", written)}");
            // The upload runs after the folder is complete (below), outside the clean-up of a half-written export.
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            if (fresh) TryDelete(target);
            stderr.WriteLine(fresh ? $"osprey: export stopped; {output} was not written." : $"osprey: export stopped; {output} is left as it was.");
            return 130;
        }
        catch when (fresh)
        {
            TryDelete(target);
            throw;
        }
        try
        {
            if (HubUpload.Run(output, export.Push, flags.Options.UseHf, flags.Options.HubToken, stderr, cancel: cancel.Token) is { } pushed)
                stdout.WriteLine(pushed.Committed ? $"osprey: pushed {output} to {pushed.RepoUrl}" : $"osprey: {pushed.RepoUrl} already has every file of {output}");
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stderr.WriteLine($"osprey: upload stopped; {output} is written, run the export's --push_to_hub again to finish it (files already sent are skipped).");
            return 130;
        }
        return 0;
    }

    /// <summary>--to_gguf: one .gguf file in <paramref name="output"/>, named after the model folder and the quant type.</summary>
    static int WriteGguf(string folder, string output, string quant, bool ollama, ModelLoadOptions load, IReadOnlyList<string> adapters, TextWriter stdout, TextWriter stderr, CancellationTokenSource cancel)
    {
        if (!Gguf.GgufExport.QuantNames.Contains(quant.ToLowerInvariant()))
            throw new UserError($"--gguf_quant {quant} is not one of {string.Join(", ", Gguf.GgufExport.QuantNames)}.");
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        var path = Path.Combine(output, $"{name}-{quant.ToLowerInvariant()}.gguf");
        try
        {
            using var model = MergedAdapters.Load(folder, load, adapters, stderr);
            var types = Gguf.GgufExport.Write(model, folder, path, quant, cancel.Token);
            var mix = string.Join(", ", types.Values.GroupBy(t => t).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}"));
            stdout.WriteLine($"osprey: wrote {path} ({types.Count} tensors: {mix})");
            if (ollama) stdout.WriteLine($"osprey: wrote {Gguf.OllamaModelfile.Write(folder, path)} (ollama create NAME -f Modelfile)");
            return 0;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            stderr.WriteLine($"osprey: export stopped; {path} was not written.");
            return 130;
        }
    }

    static void TryDelete(string directory)
    {
        try { if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
