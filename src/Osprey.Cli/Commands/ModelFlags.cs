using Osprey.Cli.Args;
using Osprey.Hub;
using Osprey.Models;
using Osprey.Options;
using Osprey.Runtime;

namespace Osprey.Cli.Commands;

/// <summary>
/// The model flags of the verbs that have no options record of their own yet (infer, deploy, export, ...): read from
/// the one declaration, <see cref="ModelOptions"/>.
/// </summary>
internal sealed record ModelFlags(ModelOptions Options)
{
    /// <summary>Help lines of the model flags.</summary>
    public static string Help => OptionSet.For<ModelOptions>().Help();

    public static ModelFlags Read(OptionReader o) => new(o.Bind<ModelOptions>());

    /// <summary>--model as given.</summary>
    public string? Model => Options.Model;

    /// <summary>--device parsed.</summary>
    public DeviceSpec Device => DeviceSpec.Parse(Options.Device);

    /// <summary>--torch_dtype as given.</summary>
    public string DType => Options.ResolvedDtype();

    public ModelLoadOptions LoadOptions(TextWriter notice) => Options.LoadOptions(notice);

    public string RequireFolder(TextWriter? log = null) => Options.ResolveFolder(log ?? Console.Error);
}
