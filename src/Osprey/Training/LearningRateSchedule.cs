namespace Osprey.Training;

/// <summary>
/// The learning rate at each optimizer step, as transformers' schedulers define it (get_scheduler with
/// num_warmup_steps / num_training_steps): linear warm-up from 0 (not for constant), then cosine (half a period) to 0, linear to 0,
/// or constant. Step k (0-based, the k-th update) uses factor(k).
/// </summary>
public sealed record LearningRateSchedule(string Type, double BaseRate, long WarmupSteps, long TotalSteps)
{
    /// <summary>The names accepted by <c>--lr_scheduler_type</c>.</summary>
    public static readonly IReadOnlyList<string> Types = ["cosine", "linear", "constant", "constant_with_warmup"];

    /// <summary>The rate for update number <paramref name="step"/> (0-based).</summary>
    public double RateAt(long step) => BaseRate * Factor(step);

    double Factor(long step)
    {
        if (Type == "constant") return 1.0; // transformers' constant schedule has no warm-up
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        switch (Type)
        {
            case "constant_with_warmup":
                return 1.0;
            case "linear":
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
            default:
                var progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * progress)));
        }
    }
}
