namespace Osprey.Datasets;

/// <summary>
/// One preference pair: the same prompt with the chosen and with the rejected response, each encoded with labels on its
/// response, and the row's optional reward margin (reward-model training).
/// </summary>
public sealed record PreferencePair(EncodedSample Chosen, EncodedSample Rejected, double? Margin = null);
