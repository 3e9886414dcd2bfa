namespace Osprey.Tests.Quantization;

/// <summary>
/// Tests that read TorchSharp's process-wide count of live tensors, which tests running beside them would change: xUnit
/// runs this collection alone.
/// </summary>
[CollectionDefinition(nameof(CountsLiveTensorsCollection), DisableParallelization = true)]
public sealed class CountsLiveTensorsCollection;
