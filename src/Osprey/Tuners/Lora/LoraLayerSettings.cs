namespace Osprey.Tuners.Lora;

/// <summary>One layer's adapter: rank, scaling, dropout and whether it is DoRA.</summary>
internal sealed record LoraLayerSettings(int Rank, double Scaling, double Dropout, bool UseDora);
