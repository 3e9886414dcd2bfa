namespace Osprey.Quantization;

/// <summary>
/// GPTQ's knobs as AutoGPTQ/GPTQModel name them: bits, group_size (−1: one group per row), sym, desc_act (act-order:
/// columns in order of decreasing Hessian diagonal), damp_percent and the lazy-update block size.
/// </summary>
internal sealed record GptqSettings(int Bits, int GroupSize, bool Sym, bool DescAct, double DampPercent = 0.01, int BlockSize = 128);
