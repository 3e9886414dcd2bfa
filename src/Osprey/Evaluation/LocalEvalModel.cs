using Osprey.Inference;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Evaluation;

/// <summary>
/// A model loaded in this process: log-likelihoods through <see cref="OptionScorer"/> and replies through the
/// <see cref="TokenGenerator"/> in left-padded batches. Tokenization follows lm-evaluation-harness: the context's
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
        var results = _generator.Generate(ids, _sampling, cancel: cancel);
        IReadOnlyList<string> replies = results.Select(r => _chat is not null
            ? _chat.DecodeReply(r.Tokens, _sampling.StopTokenIds)
            : _tokenizer.Decode(r.Tokens.Where(t => !_sampling.StopTokenIds.Contains(t)).ToList(), skipSpecialTokens: true)).ToList();
        return Task.FromResult(replies);
    }

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
        if (_ownsModel) _model.Dispose();
    }
}
