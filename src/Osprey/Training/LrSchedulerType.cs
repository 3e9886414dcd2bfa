namespace Osprey.Training;

/// <summary>The learning-rate schedule after warm-up (transformers' names, <c>--lr_scheduler_type</c>).</summary>
public enum LrSchedulerType
{
    /// <summary>Half a cosine from the peak to 0.</summary>
    Cosine,

    /// <summary>A straight line from the peak to 0.</summary>
    Linear,

    /// <summary>The peak throughout, without warm-up (as transformers' constant schedule).</summary>
    Constant,

    /// <summary>Linear warm-up, then the peak.</summary>
    ConstantWithWarmup,
}
