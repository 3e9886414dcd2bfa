namespace Osprey.Datasets;

/// <summary>One preference pair: the same prompt with the chosen and with the rejected response, each encoded with labels on its response.</summary>
public sealed record PreferencePair(EncodedSample Chosen, EncodedSample Rejected);
