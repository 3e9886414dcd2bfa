using System.Text.Json.Nodes;
using Osprey.Options;
using Osprey.Runtime;
using Osprey.Training.MemoryFit;

namespace Osprey.Server.Workbench;

/// <summary>
/// The memory-fit advisor's estimate for a Train or RLHF form, shown beside its Start button: the form's flags that
/// <c>osprey estimate</c> declares are bound as that verb binds them and <see cref="MemoryAdvisor.Estimate"/> is
/// called, so the page and the command agree; with an NVIDIA GPU the advisor's advice for GPU 0's free memory too.
/// </summary>
internal static class FitEstimate
{
    /// <summary>The verbs that train, whose forms get an estimate.</summary>
    public static readonly IReadOnlySet<string> Verbs = new HashSet<string>(StringComparer.Ordinal) { "sft", "pt", "rlhf" };

    public static JsonObject For(FormArguments form)
    {
        if (!Verbs.Contains(form.Verb)) throw new OspreyException($"the memory estimate is for {string.Join(", ", Verbs)} forms, not {form.Verb}.");
        if (form.Get("model") is null) throw new OspreyException("fill --model to see the memory estimate.");
        var set = OptionSet.For<EstimateOptions>();
        // Only the flags estimate declares (the model, encoding and trainer groups); dataset and the like do not change memory.
        var mine = form.Values.Where(v => set.Find(v.Key) is not null).ToDictionary(v => v.Key, v => v.Value, StringComparer.Ordinal);
        var options = set.BindStrings<EstimateOptions>(mine);
        var (estimate, plan, spec) = MemoryAdvisor.Estimate(options);
        var free = Nvml.FreeBytes(0);
        return new JsonObject
        {
            ["peak_bytes"] = estimate.Peak,
            ["trainable_parameters"] = estimate.TrainableParameters,
            ["model_type"] = spec.ModelType,
            ["max_length"] = plan.MaxLength,
            ["batch_size"] = plan.BatchSize,
            ["free_bytes"] = free >= 0 ? free : null,
            ["advice"] = free >= 0 ? MemoryAdvisor.Advise(spec, plan, free) : null,
        };
    }
}
