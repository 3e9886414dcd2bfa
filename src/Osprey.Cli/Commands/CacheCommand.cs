using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey cache list</c> / <c>osprey cache rm ORG/NAME</c>: parse → <see cref="CacheMaintenance.Run"/>, which
/// prints the cached repositories or what it removed.
/// </summary>
internal sealed class CacheCommand : ICommand
{
    public string Name => "cache";

    public IReadOnlyCollection<string> Actions => ["list", "rm"];

    public IReadOnlyList<Type> OptionsTypes => [typeof(CacheOptions)];

    public string Summary => "List the models and datasets in the local hub caches, or remove one.";

    public string Usage => OptionSet.For<CacheOptions>().Help() +
        "  Folders: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; MODELSCOPE_CACHE, else ~/.cache/modelscope/hub.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var cache = options.Bind<CacheOptions>();
        options.EnsureNoUnknownFlags();
        CacheMaintenance.Run(cache, stdout);
        return 0;
    }
}
