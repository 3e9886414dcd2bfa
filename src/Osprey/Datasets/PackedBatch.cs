namespace Osprey.Datasets;

/// <summary>Packs as a right-padded batch: <see cref="InputIds"/>, <see cref="Labels"/> and <see cref="PositionIds"/> are [Rows, Columns], row-major.</summary>
public sealed record PackedBatch(int Rows, int Columns, long[] InputIds, long[] Labels, long[] PositionIds);
