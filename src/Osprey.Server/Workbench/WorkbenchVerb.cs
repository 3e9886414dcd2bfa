namespace Osprey.Server.Workbench;

/// <summary>
/// One <c>osprey</c> verb the web UI can run: its name, its one-line summary and the options records whose declared
/// flags become its form, in order (the same declarations the command line binds).
/// </summary>
public sealed record WorkbenchVerb(string Name, string Summary, IReadOnlyList<Type> OptionsTypes)
{
    /// <summary>The flags of all its records, in order.</summary>
    public IReadOnlyList<Options.OptionSpec> Options => [.. OptionsTypes.SelectMany(t => Osprey.Options.OptionSet.For(t).Options).DistinctBy(o => o.Name)];
}
