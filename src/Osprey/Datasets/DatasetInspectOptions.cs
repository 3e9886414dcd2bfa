using Osprey.Options;

namespace Osprey.Datasets;

/// <summary>
/// Everything <c>osprey dataset</c> takes: <c>list</c> the registered datasets, or <c>check</c> dataset entries with the
/// reading flags of training (<c>--strict</c>, <c>--columns</c>, ...). <see cref="DatasetInspection.Run"/> runs it.
/// </summary>
public sealed record DatasetInspectOptions
{
    /// <summary>Print the registered datasets.</summary>
    [Option("list", "Print the registered datasets: name, hub ids, subsets, format, cached or not (also: osprey dataset list).")]
    public bool List { get; init; }

    /// <summary>Dataset entries to load and describe.</summary>
    [Option("check", "Load these entries (path_or_id[:subset][#N]) and print each file's format and row count, plus the first row converted (also: osprey dataset check SPEC...).", Placeholder = "SPEC...")]
    public IReadOnlyList<string> Check { get; init; } = [];

    /// <summary>How --check reads rows (its --dataset entries are checked too).</summary>
    [OptionGroup]
    public DatasetOptions Data { get; init; } = new();
}
