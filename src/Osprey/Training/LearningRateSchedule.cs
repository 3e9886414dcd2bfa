namespace Osprey.Training;

/// <summary>
/// The learning rate at each optimizer step: linear warm-up over <paramref name="WarmupSteps"/> from 0, then the
/// <paramref name="Type"/> decay to 0 at <paramref name="TotalSteps"/>, as transformers' schedulers compute it.
/// </summary>
public sealed record LearningRateSchedule(LrSchedulerType Type, double BaseRate, long WarmupSteps, long TotalSteps)
{
    /// <summary>The rate of step <paramref name="step"/> (0-based).</summary>
    public double RateAt(long step) => BaseRate * Factor(step);

    double Factor(long step)
    {
        if (Type == LrSchedulerType.Constant) return 1.0; // transformers' constant schedule has no warm-up
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        switch (Type)
        {
            case LrSchedulerType.ConstantWithWarmup:
                return 1.0;
            case LrSchedulerType.Linear:
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
            default:
                var progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * progress)));
        }
    }
}
