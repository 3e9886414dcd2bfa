namespace Osprey.Server.Workbench;

/// <summary>
/// One <c>osprey</c> verb the web UI can run: its name, its one-line summary and the options record whose declared flags
/// become its form (the same declarations the command line binds).
/// </summary>
public sealed record WorkbenchVerb(string Name, string Summary, Type OptionsType);
