namespace Osprey.Inference;

/// <summary>
/// How to generate. Defaults follow transformers' GenerationConfig; <see cref="FromModel"/> starts from
/// the model's generation_config.json and config.json, and callers override with <c>with { }</c>.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens per sequence.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Sample (true) or pick the most likely token (false). Temperature 0 also means greedy.</summary>
    public bool DoSample { get; init; }
    /// <summary>Divides logits before sampling.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens when sampling (0 = all).</summary>
    public int TopK { get; init; } = 50;
    /// <summary>Keep the smallest set of tokens whose probability reaches p when sampling (1 = all).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>CTRL-style penalty on tokens already in the prompt or output (1 = off).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Seed for sampling; null draws one from the clock.</summary>
    public long? Seed { get; init; }
    /// <summary>Generation stops for a sequence when it emits any of these ids.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>Generation stops when the decoded output contains any of these (needs <see cref="Decode"/>).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Turns token ids into text, for stop strings.</summary>
    public Func<IReadOnlyList<int>, string>? Decode { get; init; }
    /// <summary>Token used for left padding and for rows that already finished.</summary>
    public int PadTokenId { get; init; }

    /// <summary>True when the options pick tokens greedily.</summary>
    public bool IsGreedy => !DoSample || Temperature <= 0;

    /// <summary>Checks ranges once at the entry point.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0) throw new OspreyException($"max_new_tokens must be 0 or more, got {MaxNewTokens}.");
        if (!double.IsFinite(Temperature) || !double.IsFinite(TopP) || !double.IsFinite(RepetitionPenalty))
            throw new OspreyException($"temperature, top_p and repetition_penalty must be finite numbers, got {Temperature}, {TopP} and {RepetitionPenalty}.");
        if (Temperature < 0) throw new OspreyException($"temperature must be 0 or more, got {Temperature}.");
        if (TopK < 0) throw new OspreyException($"top_k must be 0 (off) or more, got {TopK}.");
        if (TopP is <= 0 or > 1) throw new OspreyException($"top_p must be in (0, 1], got {TopP}.");
        if (RepetitionPenalty <= 0) throw new OspreyException($"repetition_penalty must be positive, got {RepetitionPenalty}.");
        if (StopStrings.Count > 0 && Decode is null) throw new OspreyException("stop strings need a tokenizer to decode the output; pass Decode or drop the stop strings.");
    }

    /// <summary>
    /// Defaults for a model: generation_config.json (if present) over transformers' defaults, with the
    /// end-of-sequence ids of config.json and generation_config.json combined.
    /// </summary>
    public static GenerationOptions FromModel(Models.DecoderSpec spec, GenerationConfigFile? file)
    {
        var o = new GenerationOptions();
        var eos = new List<int>(spec.EosTokenIds);
        if (file is not null)
        {
            o = o with
            {
                DoSample = file.DoSample ?? o.DoSample,
                Temperature = file.Temperature ?? o.Temperature,
                TopK = file.TopK ?? o.TopK,
                TopP = file.TopP ?? o.TopP,
                RepetitionPenalty = file.RepetitionPenalty ?? o.RepetitionPenalty,
                MaxNewTokens = file.MaxNewTokens ?? o.MaxNewTokens,
            };
            foreach (var id in file.EosTokenIds) if (!eos.Contains(id)) eos.Add(id);
        }
        var pad = file?.PadTokenId ?? spec.PadTokenId ?? (eos.Count > 0 ? eos[0] : 0);
        return o with { EosTokenIds = eos, PadTokenId = pad };
    }
}
