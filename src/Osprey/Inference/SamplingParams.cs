using Osprey.Inference.Constraints;
using Osprey.Models;

namespace Osprey.Inference;

/// <summary>
/// How one request is generated: the fields of an OpenAI completion request (or of <c>osprey infer</c>'s flags),
/// already resolved against the model's generation_config.json defaults (<see cref="FromModel"/>). Each request in
/// an engine batch carries its own; <see cref="TokenGenerator"/> and <c>InferenceEngine</c> read the same
/// fields and pick tokens with the same sampler.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>
    /// Most new tokens (max_tokens, max_new_tokens); null: as many as the context has room for after the prompt
    /// (see <see cref="NewTokenLimit"/>). Generation also stops at the engine's max_model_len.
    /// </summary>
    public int? MaxTokens { get; init; }
    /// <summary>transformers' do_sample: false picks greedily whatever the temperature.</summary>
    public bool DoSample { get; init; } = true;
    /// <summary>Divides the logits before sampling; 0 means greedy.</summary>
    public double Temperature { get; init; }
    /// <summary>Nucleus sampling threshold in (0, 1].</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens when sampling (0 or -1: all).</summary>
    public int TopK { get; init; }
    /// <summary>CTRL-style penalty on tokens already in the prompt or output (1 = off).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>OpenAI's presence_penalty in [-2, 2]: subtracted from the logit of every token already in the output.</summary>
    public double PresencePenalty { get; init; }
    /// <summary>OpenAI's frequency_penalty in [-2, 2]: subtracted once per earlier occurrence of the token in the output.</summary>
    public double FrequencyPenalty { get; init; }
    /// <summary>OpenAI's logit_bias: token id → a value in [-100, 100] added to that token's logit before any other processing.</summary>
    public IReadOnlyDictionary<int, double>? LogitBias { get; init; }
    /// <summary>Seed of this request's own random stream; null draws one.</summary>
    public long? Seed { get; init; }
    /// <summary>Stop strings: the output ends before the first one that appears (it is not part of the text).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Token ids that end the output (the model's end-of-sequence ids, unless <see cref="IgnoreEos"/>).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Keep going past <see cref="StopTokenIds"/>.</summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Log-probabilities to return: null none; 0 the chosen token's only; k also the k most likely (at most 20).</summary>
    public int? Logprobs { get; init; }
    /// <summary>
    /// Constrained decoding (OpenAI's response_format): each token must keep the output a prefix of a value this
    /// grammar accepts, and the end-of-sequence token may come only once the value is complete. Null: free text.
    /// Honoured by the serving engine; <see cref="TokenGenerator"/> ignores it.
    /// </summary>
    public JsonSchemaGrammar? Grammar { get; init; }
    /// <summary>The token <see cref="TokenGenerator"/> left-pads a batch of prompts with (masked out); the engine does not pad.</summary>
    public int PadTokenId { get; init; }

    /// <summary>True when presence or frequency penalties apply.</summary>
    public bool CountsOutput => PresencePenalty != 0 || FrequencyPenalty != 0;

    /// <summary>True when tokens are picked greedily.</summary>
    public bool IsGreedy => !DoSample || Temperature <= 0;

    /// <summary>The stop token ids in force: none with <see cref="IgnoreEos"/>.</summary>
    public IReadOnlyList<int> EffectiveStopTokenIds => IgnoreEos ? [] : StopTokenIds;

    /// <summary>
    /// New tokens at most for a prompt of <paramref name="promptLength"/> tokens in a context of
    /// <paramref name="contextLength"/>: <see cref="MaxTokens"/>, or, when it is left out, the room the prompt
    /// leaves. The one place a missing max_tokens is decided.
    /// </summary>
    public int NewTokenLimit(int promptLength, int contextLength) => MaxTokens ?? Math.Max(0, contextLength - promptLength);

    /// <summary>transformers' GenerationConfig max_new_tokens, what <see cref="FromModel"/> gives when generation_config.json has none.</summary>
    public const int TransformersMaxNewTokens = 256;

    /// <summary>
    /// Defaults for a model: generation_config.json (if present) over transformers' defaults, with the
    /// end-of-sequence ids of config.json and generation_config.json combined as <see cref="StopTokenIds"/>.
    /// </summary>
    public static SamplingParams FromModel(DecoderSpec spec, GenerationConfigFile? file)
    {
        var eos = new List<int>(spec.EosTokenIds);
        foreach (var id in file?.EosTokenIds ?? []) if (!eos.Contains(id)) eos.Add(id);
        return new SamplingParams
        {
            MaxTokens = file?.MaxNewTokens ?? TransformersMaxNewTokens,
            DoSample = file?.DoSample ?? false,
            Temperature = file?.Temperature ?? 1.0,
            TopK = file?.TopK ?? 50,
            TopP = file?.TopP ?? 1.0,
            RepetitionPenalty = file?.RepetitionPenalty ?? 1.0,
            StopTokenIds = eos,
            PadTokenId = file?.PadTokenId ?? spec.PadTokenId ?? (eos.Count > 0 ? eos[0] : 0),
        };
    }

    /// <summary>The most top log-probabilities a request may ask for.</summary>
    public const int MaxTopLogprobs = 20;

    /// <summary>Checks every field; throws an <see cref="EngineException"/> of kind InvalidRequest naming the field.</summary>
    public void Validate()
    {
        static EngineException Bad(string m) => new(EngineErrorKind.InvalidRequest, m);
        if (MaxTokens is < 1) throw Bad($"max_tokens must be 1 or more, got {MaxTokens}.");
        if (!double.IsFinite(Temperature) || Temperature < 0 || Temperature > 100) throw Bad($"temperature must be between 0 and 100, got {Temperature}.");
        if (!double.IsFinite(TopP) || TopP <= 0 || TopP > 1) throw Bad($"top_p must be in (0, 1], got {TopP}.");
        if (TopK < -1) throw Bad($"top_k must be -1 or 0 (all) or a positive count, got {TopK}.");
        if (!double.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0) throw Bad($"repetition_penalty must be positive, got {RepetitionPenalty}.");
        if (!double.IsFinite(PresencePenalty) || PresencePenalty is < -2 or > 2) throw Bad($"presence_penalty must be between -2 and 2, got {PresencePenalty}.");
        if (!double.IsFinite(FrequencyPenalty) || FrequencyPenalty is < -2 or > 2) throw Bad($"frequency_penalty must be between -2 and 2, got {FrequencyPenalty}.");
        if (LogitBias is { Count: > 300 }) throw Bad($"logit_bias takes at most 300 tokens, got {LogitBias.Count}.");
        foreach (var (token, bias) in LogitBias ?? new Dictionary<int, double>())
            if (!double.IsFinite(bias) || bias is < -100 or > 100) throw Bad($"logit_bias for token {token} must be between -100 and 100, got {bias}.");
        if (Logprobs is < 0 or > MaxTopLogprobs) throw Bad($"top_logprobs must be between 0 and {MaxTopLogprobs}, got {Logprobs}.");
        if (Stop.Count > 16) throw Bad($"stop takes at most 16 strings, got {Stop.Count}.");
        foreach (var s in Stop)
            if (string.IsNullOrEmpty(s)) throw Bad("stop strings must not be empty.");
    }
}
