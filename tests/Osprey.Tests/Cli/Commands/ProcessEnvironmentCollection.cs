namespace Osprey.Tests.Cli.Commands;

/// <summary>
/// Tests that change process-wide environment variables (XDG_CACHE_HOME): they run alone, never alongside
/// another test that might read the variable meanwhile.
/// </summary>
[CollectionDefinition(nameof(ProcessEnvironmentCollection), DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection;
