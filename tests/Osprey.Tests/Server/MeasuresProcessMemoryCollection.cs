namespace Osprey.Tests.Server;

/// <summary>
/// Tests that measure the whole process's managed memory: they run alone, never alongside tests that would move the
/// figure.
/// </summary>
[CollectionDefinition(nameof(MeasuresProcessMemoryCollection), DisableParallelization = true)]
public sealed class MeasuresProcessMemoryCollection;
