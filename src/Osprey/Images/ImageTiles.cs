namespace Osprey.Images;

/// <summary>
/// One image as a LLaVA-style vision tower takes it: <see cref="Tiles"/> square-or-rectangular crops of
/// <see cref="Height"/> x <see cref="Width"/> pixels, channel-first (the processor's pixel_values for this image), and
/// the image's size before processing (LLaVA-NeXT's <c>image_sizes</c>, which its unpadding needs). Plain LLaVA has
/// one tile; LLaVA-NeXT has the resized whole image first, then the anyres tiles row by row.
/// </summary>
/// <param name="PixelValues">Tiles * 3 * Height * Width floats: tile, channel, row, column.</param>
/// <param name="Tiles">Crops in <see cref="PixelValues"/>.</param>
/// <param name="Height">Rows of one crop.</param>
/// <param name="Width">Columns of one crop.</param>
/// <param name="OriginalHeight">The decoded image's height.</param>
/// <param name="OriginalWidth">The decoded image's width.</param>
public sealed record ImageTiles(float[] PixelValues, int Tiles, int Height, int Width, int OriginalHeight, int OriginalWidth) : ProcessedImage;
