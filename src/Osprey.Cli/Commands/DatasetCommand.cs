using Osprey.Cli.Args;
using Osprey.Datasets;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey dataset list</c> / <c>osprey dataset check SPEC...</c>: parse → <see cref="DatasetInspection.Run"/>,
/// which prints the registry or each entry's format, row count and first row.
/// </summary>
internal sealed class DatasetCommand : ICommand
{
    public string Name => "dataset";

    public IReadOnlyCollection<string> Actions => ["list", "check"];

    public string Summary => "List the registered datasets and whether they are cached, or check a dataset's format and rows.";

    public string Usage => OptionSet.For<DatasetInspectOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var inspect = options.Bind<DatasetInspectOptions>();
        options.EnsureNoUnknownFlags();
        DatasetInspection.Run(inspect, stdout);
        return 0;
    }
}
