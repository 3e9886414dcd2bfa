namespace Osprey.Evaluation;

/// <summary>
/// One line of a report: the mean of <see cref="Metric"/> over <see cref="Num"/> items of a subset, of a category,
/// or of the whole set (<see cref="Level"/> is <c>subset</c>, <c>category</c> or <c>overall</c>; the name of that
/// group is <see cref="Group"/>).
/// </summary>
public sealed record EvalScoreRow(string Dataset, string Level, string Group, string Metric, int Num, double Score);
