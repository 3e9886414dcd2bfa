namespace Osprey.Tests.Training.Reporting;

/// <summary>One decoded TensorBoard event.</summary>
public sealed record DecodedEvent(double WallTime, long Step, string? FileVersion, IReadOnlyList<(string Tag, float Value)> Scalars, int? SessionStatus);
