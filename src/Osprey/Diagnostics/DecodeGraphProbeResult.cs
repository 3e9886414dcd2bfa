namespace Osprey.Diagnostics;

/// <summary>What <see cref="GraphProbe.Decode"/> measured for one batch size.</summary>
/// <param name="RefMs">Milliseconds per step of the eager decode path (growing cache view, no mask).</param>
/// <param name="StaticMs">Milliseconds per step of the static-shape slot step, run eagerly.</param>
/// <param name="GraphMs">Milliseconds per step of the same step replayed from a CUDA graph.</param>
/// <param name="CaptureMs">Time to capture the step's graph.</param>
/// <param name="ExtraMiB">GPU memory the captured graph added (NVML; meaningless without it).</param>
/// <param name="GraphEqualsStatic">The replayed tokens equal the eager static step's, every one.</param>
/// <param name="RefAgree">Fraction of replayed tokens equal to the reference path's.</param>
/// <param name="FirstMismatch">Where the reference and replayed tokens first differ (<c>row R step S: ref A graph B</c>), empty when they agree.</param>
/// <param name="TeacherForcedAgree">Argmax picks of the static step fed the reference tokens that equal the reference's next token.</param>
/// <param name="TeacherForcedTotal">Picks compared (batch × steps).</param>
/// <param name="TeacherForcedGap">The largest logit gap between the two candidates where they differ (a near-tie in bf16 is a few hundredths).</param>
public sealed record DecodeGraphProbeResult(
    double RefMs, double StaticMs, double GraphMs, double CaptureMs, double ExtraMiB, bool GraphEqualsStatic, double RefAgree,
    string FirstMismatch, long TeacherForcedAgree, long TeacherForcedTotal, double TeacherForcedGap);
