namespace Osprey.Images;

/// <summary>
/// One image as a vision-language model's image processor left it: Qwen2-VL's merge-ordered patches
/// (<see cref="ImagePatches"/>) or a LLaVA tower's crops (<see cref="ImageTiles"/>). Requests, samples and batches carry
/// images as this type, so the engine and the trainer need not know the family; the model that processed it counts its
/// tokens and encodes it.
/// </summary>
public abstract record ProcessedImage;
