using Osprey.Inference;
using Osprey.Models;
using Osprey.Serving;
using Osprey.Tokenization;

namespace Osprey.Evaluation;

/// <summary>
/// A model loaded in this process: log-likelihoods through <see cref="OptionScorer"/>; replies through the serving
/// engine (continuous batching, CUDA graphs on a GPU) for a model of its own, or through the <see cref="TokenGenerator"/>
/// in left-padded batches for the training model evaluated between steps (an engine would capture graphs over weights
/// the next step changes). Tokenization follows lm-evaluation-harness: the context's
/// trailing spaces move to the continuation, no special tokens are added to raw text, and the option tokens are
/// those of the encoded context + option past the encoded context's length.
/// </summary>
public sealed class LocalEvalModel : IEvalModel
{
    readonly CausalLM _model;
    readonly Tokenizer _tokenizer;
    readonly ChatPrompt? _chat;
    readonly bool? _chatTemplate;
    readonly SamplingParams _sampling;
    readonly TokenGenerator _generator;
    readonly bool _ownsModel;
    InferenceEngine? _engine;

    /// <summary>
    /// Wraps <paramref name="model"/> (disposed with this unless <paramref name="ownsModel"/> is false, as for the
    /// training model evaluated between steps). <paramref name="chat"/> renders chat prompts (null: the model has no
    /// template, so prompts are plain text); <paramref name="chatTemplate"/> forces the template on or off (null: on
    /// for generation, off for log-likelihood).
    /// </summary>
    public LocalEvalModel(CausalLM model, Tokenizer tokenizer, ChatPrompt? chat, bool? chatTemplate, EvalGeneration generation, int batchSize, string name, bool ownsModel = true)
    {
        _model = model;
        _ownsModel = ownsModel;
        _model.eval();
        _tokenizer = tokenizer;
        _chat = chat;
        _chatTemplate = chatTemplate;
        if (chatTemplate == true && chat is null) throw new OspreyException("--apply_chat_template true: the model's tokenizer has no chat template; pass --template or drop the flag.");
        var defaults = SamplingParams.FromModel(model.Spec, model.SourceDirectory is null ? null : GenerationConfigFile.Read(model.SourceDirectory));
        _sampling = defaults with
        {
            MaxTokens = generation.MaxTokens,
            DoSample = !generation.IsGreedy,
            Temperature = generation.Temperature,
            TopP = generation.TopP,
            TopK = generation.TopK,
            RepetitionPenalty = 1.0,
            Seed = generation.Seed,
            StopTokenIds = chat?.StopIds(defaults.StopTokenIds) ?? defaults.StopTokenIds,
        };
        _generator = new TokenGenerator(model);
        Concurrency = batchSize;
        Name = name;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public bool CanScore => true;

    /// <inheritdoc/>
    public int Concurrency { get; }

    /// <inheritdoc/>
    public double[] LogLikelihoods(string context, IReadOnlyList<string> continuations)
    {
        if (_chatTemplate == true) context = _chat!.Render([InferenceDataset.Message("user", context)]);
        var (contextIds, sequences) = Encode(_tokenizer, context, continuations);
        return OptionScorer.LogLikelihoods(_model, sequences, contextIds.Length);
    }

    /// <summary>
    /// lm-evaluation-harness's split of context and continuations into tokens: trailing spaces of the context move
    /// to each continuation, then each sequence is encode(context + continuation) without special tokens.
    /// </summary>
    public static (int[] Context, IReadOnlyList<int[]> Sequences) Encode(Tokenizer tokenizer, string context, IReadOnlyList<string> continuations)
    {
        var spaces = context.Length - context.TrimEnd(' ').Length;
        var moved = context[^spaces..];
        context = context[..^spaces];
        var contextIds = tokenizer.EncodeIds(context, addSpecialTokens: false);
        var sequences = continuations.Select(c => tokenizer.EncodeIds(context + moved + c, addSpecialTokens: false)).ToList();
        return (contextIds, sequences);
    }

    /// <inheritdoc/>
    public Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<EvalPrompt> prompts, CancellationToken cancel)
    {
        var useChat = _chatTemplate ?? _chat is not null;
        var ids = prompts.Select(p => useChat
            ? (IReadOnlyList<int>)_chat!.Encode(Messages(p))
            : _tokenizer.EncodeIds(p.Text)).ToList();
        if (!_ownsModel)
            return Task.FromResult<IReadOnlyList<string>>(ids.Chunk(Math.Max(1, Concurrency))
                .SelectMany(batch => _generator.Generate(batch, _sampling, cancel: cancel)).Select(r => Reply(r.Tokens)).ToList());
        return GenerateWithEngineAsync(ids, cancel);
    }

    async Task<IReadOnlyList<string>> GenerateWithEngineAsync(List<IReadOnlyList<int>> ids, CancellationToken cancel)
    {
        // No max_tokens: replies may run to the context (the engine's default length, 8,192 at most).
        var context = _model.Spec.MaxPositionEmbeddings is int m and > 0 ? Math.Min(m, 8192) : 8192;
        var engine = Engine(_sampling.MaxTokens is int n ? ids.Max(p => p.Count) + n : Math.Max(context, ids.Max(p => p.Count) + 1));
        var results = await Task.WhenAll(ids.Select(p => engine.GenerateAsync(new EngineRequest(p, _sampling), cancel))).ConfigureAwait(false);
        return results.Select(r => Reply(r.Tokens.Select(t => t.TokenId).ToList())).ToList();
    }

    /// <summary>
    /// The engine, sized for <paramref name="tokens"/> per request (prompt plus reply) and <see cref="Concurrency"/>
    /// requests at once: its KV cache is allocated up front, so it is made as long as the longest request seen so far
    /// (rounded up to 256 tokens) and made again only when a longer one comes.
    /// </summary>
    InferenceEngine Engine(int tokens)
    {
        if (_engine is not null && _engine.MaxModelLen >= tokens) return _engine;
        _engine?.Dispose();
        var length = (tokens + 1 + 255) / 256 * 256;
        if (_model.Spec.MaxPositionEmbeddings is int m and > 0) length = Math.Max(Math.Min(length, m), tokens + 1);
        return _engine = new InferenceEngine(_model, _tokenizer, new EngineOptions { MaxBatchSize = Math.Max(1, Concurrency), MaxModelLen = length, MaxQueue = Math.Max(256, 4 * Math.Max(1, Concurrency)) }); // EvalRunner submits chunks of 4x concurrency
    }

    string Reply(IReadOnlyList<int> tokens) => _chat is not null
        ? _chat.DecodeReply(tokens, _sampling.StopTokenIds)
        : _tokenizer.Decode(tokens.Where(t => !_sampling.StopTokenIds.Contains(t)).ToList(), skipSpecialTokens: true);

    /// <summary>The chat messages of a prompt: the system message when there is one, then the user's text.</summary>
    public static List<object?> Messages(EvalPrompt prompt)
    {
        var messages = new List<object?>();
        if (prompt.System is not null) messages.Add(InferenceDataset.Message("system", prompt.System));
        messages.Add(InferenceDataset.Message("user", prompt.User));
        return messages;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _engine?.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
