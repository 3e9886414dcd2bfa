namespace Osprey.Models;

/// <summary>Per-layer attention settings.</summary>
/// <param name="Rope">The rotary embedding this layer uses.</param>
/// <param name="SlidingWindow">Attend only to the last N positions (including itself), or null for full.</param>
public sealed record LayerSpec(RopeSettings Rope, int? SlidingWindow);
