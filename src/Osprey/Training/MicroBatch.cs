namespace Osprey.Training;

/// <summary>
/// One padded micro-batch, row-major [Rows, Columns]: ids, labels (-100 where no loss), packed position ids or
/// null, the number of labelled next-token predictions and of real (non-pad) tokens, and the rows' images in order
/// (vision-language data; null for text).
/// </summary>
public sealed record MicroBatch(int Rows, int Columns, long[] InputIds, long[] Labels, long[]? PositionIds, long LabelledTokens, long Tokens, IReadOnlyList<Osprey.Images.ProcessedImage>? Images = null);
