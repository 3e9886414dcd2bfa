using System.Globalization;
using Osprey.Hub;
using Osprey.Hub.Download;
using Osprey.Models;
using Osprey.Runtime;

namespace Osprey.Training.MemoryFit;

/// <summary>
/// The memory-fit advisor: <c>osprey estimate</c>'s prediction (<see cref="Estimate"/>), and the check sft/rlhf make
/// on CUDA before loading (<see cref="Advise"/>, a pure function of the plan and the free bytes).
/// </summary>
public static class MemoryAdvisor
{
    const double GiB = 1L << 30;

    /// <summary>The prediction for <c>osprey estimate</c>: reads only config.json (a folder, the hub caches, or config.json alone downloaded).</summary>
    /// <exception cref="OspreyException">No --model, an unreadable config, or bad flags.</exception>
    public static (MemoryEstimate Estimate, MemoryPlan Plan, DecoderSpec Spec) Estimate(EstimateOptions options, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        // --quant_bits alone means bitsandbytes here, as in the issue's spelling of the verb.
        var quant = options.Model.Quantization;
        if (quant.QuantBits is not null && quant.QuantMethod is null) options = options with { Model = options.Model with { Quantization = quant with { QuantMethod = "bnb" } } };
        options.Model.Quantization.Validate();
        options.Trainer.Validate();
        var folder = ConfigFolder(options.Model, log ?? TextWriter.Null);
        var spec = ModelRegistry.ReadSpec(folder);
        var plan = MemoryPlan.From(options.AsSft(), spec.SavedDType, spec.MaxPositionEmbeddings ?? 2048);
        return (MemoryEstimate.Compute(spec, plan), plan, spec);
    }

    /// <summary>
    /// Null when <paramref name="plan"/> fits in <paramref name="freeBytes"/>; else one sentence saying what it needs,
    /// what is free and which single change would fit (or, when none alone does, the combination, or that none does).
    /// </summary>
    public static string? Advise(DecoderSpec spec, MemoryPlan plan, long freeBytes)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(plan);
        var need = MemoryEstimate.Compute(spec, plan).Peak;
        if (need <= freeBytes) return null;
        var changes = Changes(plan);
        var head = $"needs ≈{Format(need)} GiB, {(freeBytes / GiB).ToString("F1", CultureInfo.InvariantCulture)} GiB free";
        var fitting = changes
            .Select(c => (c.Flags, Peak: MemoryEstimate.Compute(spec, c.Apply(plan)).Peak))
            .Where(c => c.Peak <= freeBytes).ToList();
        if (fitting.Count > 0)
            return $"{head}: add {string.Join(" or ", fitting.Select(f => $"{f.Flags} (≈{Format(f.Peak)} GiB)"))}, or pass --ignore_memory_check true to try anyway.";
        if (changes.Count > 1)
        {
            var all = changes.Aggregate(plan, (p, c) => c.Apply(p));
            var peak = MemoryEstimate.Compute(spec, all).Peak;
            var flags = string.Join(" ", changes.Select(c => c.Flags));
            if (peak <= freeBytes) return $"{head}: add {flags} (≈{Format(peak)} GiB), or pass --ignore_memory_check true to try anyway.";
            return $"{head}, and even {flags} needs ≈{Format(peak)} GiB: lower --max_length or use a larger GPU (--ignore_memory_check true tries anyway).";
        }
        var only = changes.Count == 1 ? $", and even {changes[0].Flags} needs ≈{Format(MemoryEstimate.Compute(spec, changes[0].Apply(plan)).Peak)} GiB" : "";
        return $"{head}{only}: lower --max_length or use a larger GPU (--ignore_memory_check true tries anyway).";
    }

    /// <summary>The single changes that lower memory, most effective kind first.</summary>
    static List<(string Flags, Func<MemoryPlan, MemoryPlan> Apply)> Changes(MemoryPlan plan)
    {
        var list = new List<(string, Func<MemoryPlan, MemoryPlan>)>();
        if (plan.TrainType == TrainType.Full) list.Add(("--train_type lora", p => p with { TrainType = TrainType.Lora }));
        // A quantized base trains adapters only: offered to LoRA runs (a full run is offered LoRA first).
        if (plan.QuantBits != 4 && plan.TrainType == TrainType.Lora) list.Add(("--quant_method bnb --quant_bits 4", p => p with { QuantBits = 4, DoubleQuant = true }));
        if (!plan.GradientCheckpointing) list.Add(("--gradient_checkpointing true", p => p with { GradientCheckpointing = true }));
        if (plan.BatchSize > 1) list.Add(("--per_device_train_batch_size 1", p => p with { BatchSize = 1 }));
        return list;
    }

    /// <summary>
    /// sft/rlhf on CUDA, before loading: stops with <see cref="Advise"/>'s sentence when the run will not fit in the
    /// device's free memory. No check on the CPU, with --ignore_memory_check true, or without NVML (a notice says so).
    /// </summary>
    /// <exception cref="OspreyException">The run will not fit.</exception>
    internal static void CheckBeforeLoading(SftOptions o, string folder, TextWriter log)
    {
        if (o.Trainer.IgnoreMemoryCheck) return;
        var device = DeviceSpec.Parse(o.Model.Device);
        if (device.Kind == DeviceKind.Cpu) return;
        // A worker checks its own GPU, cuda:LOCAL_RANK.
        if (Distributed.DistributedEnvironment.Current is { IsWorker: true, WorldSize: > 1 } env) device = device with { Index = env.LocalRank };
        var runtime = TorchRuntime.Initialize(device, log);
        if (runtime.Device.type != TorchSharp.DeviceType.CUDA) return;
        var index = runtime.Device.index < 0 ? 0 : runtime.Device.index;
        var free = Nvml.FreeBytes(PhysicalIndex(index));
        if (free < 0)
        {
            log.WriteLine("osprey: notice: free GPU memory is unknown (no NVML), so the memory-fit check is skipped.");
            return;
        }
        var spec = ModelRegistry.ReadSpec(folder);
        var plan = MemoryPlan.From(o, spec.SavedDType, spec.MaxPositionEmbeddings ?? 2048);
        if (Advise(spec, plan, free) is { } sentence) throw new OspreyException($"This run {sentence}");
        log.WriteLine($"osprey: predicted peak GPU memory ≈{Format(MemoryEstimate.Compute(spec, plan).Peak)} GiB of {(free / GiB).ToString("F1", CultureInfo.InvariantCulture)} GiB free (osprey estimate shows the parts).");
    }

    /// <summary>NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES renumbers them for CUDA.</summary>
    static int PhysicalIndex(int cudaIndex)
    {
        var visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return visible is not null && cudaIndex < visible.Length && int.TryParse(visible[cudaIndex], CultureInfo.InvariantCulture, out var p) ? p : cudaIndex;
    }

    /// <summary>GiB with one decimal below 10, whole above (the sentence's ≈ figures).</summary>
    public static string Format(long bytes)
    {
        var g = bytes / GiB;
        return g.ToString(g < 10 ? "F1" : "F0", CultureInfo.InvariantCulture);
    }

    static string ConfigFolder(ModelOptions model, TextWriter log)
    {
        if (model.Model is { } id && !Directory.Exists(id) && id != "demo" && HubCache.IsRepoId(id)
            && HubCache.FindHuggingFace(id, HubCache.HuggingFaceRoots()) is null && HubCache.FindModelScope(id, HubCache.ModelScopeRoots()) is null)
        {
            // Not cached: config.json is all the estimate needs, so only it is downloaded.
            return HubResolver.DownloadAsync(id, new HubDownloadOptions { Include = ["config.json"] }, model.UseHf, offline: false, log).GetAwaiter().GetResult();
        }
        return model.ResolveFolder(log);
    }
}
