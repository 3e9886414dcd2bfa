using Osprey.Cli.Args;
using Osprey.Datasets;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>The dataset flags of verbs without an options record of their own (<c>osprey encode</c>, <c>export</c>): <see cref="DatasetOptions"/> plus <c>--seed</c>.</summary>
internal static class DatasetFlags
{
    public static string Help => OptionSet.For<DatasetOptions>().Help() +
        "  --seed N                          Seed for shuffling, splitting and #N sampling. Default: 42.\n";

    public static DatasetOptions Read(OptionReader o)
    {
        var options = o.Bind<DatasetOptions>() with { Seed = o.Int("seed", 42) };
        options.Validate();
        return options;
    }
}
