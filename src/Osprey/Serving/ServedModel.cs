using System.Text.Json;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Serving;

/// <summary>
/// A model as a server offers it: the engine, the chat template that turns messages into prompt ids, the names
/// clients may use (the base and each LoRA adapter) and the sampling defaults of its generation_config.json.
/// The HTTP server, the web app and <c>OspreyChatClient</c> all sit on one of these.
/// </summary>
public sealed class ServedModel : IDisposable
{
    /// <summary>Wraps an engine that is already running.</summary>
    public ServedModel(InferenceEngine engine, ChatPrompt chat, string name, SamplingParams defaults)
    {
        Engine = engine;
        Chat = chat;
        Name = name;
        Defaults = defaults;
    }

    /// <summary>
    /// Loads <paramref name="folder"/> (an HF model folder) with its tokenizer and chat template and starts an
    /// engine over it.
    /// </summary>
    public static ServedModel Load(string folder, ModelLoadOptions load, ServeOptions? serve = null)
    {
        serve ??= new ServeOptions();
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "serve a model folder that has its tokenizer files.");
        var chat = ChatPrompt.Create(tokenizer, folder, serve.Template);
        foreach (var (name, path) in serve.Adapters)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new OspreyException($"adapter {path} has an empty name; give it as name=path.");
            if (!Tuners.Lora.PeftAdapter.IsAdapter(path)) throw new OspreyException($"adapter '{name}': {path} has no adapter_config.json; point it at a PEFT LoRA adapter folder (a checkpoint-N of osprey sft).");
        }
        var model = CausalLM.Load(folder, load);
        try
        {
            if (model.IsRewardModel) throw new OspreyException($"{folder} is a reward model (a score head); it scores, it cannot be served for chat or completions.");
            var engine = new InferenceEngine(model, tokenizer, serve.Engine, serve.Adapters);
            var name = serve.ServedModelName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
            if (serve.Adapters.ContainsKey(name)) throw new OspreyException($"adapter name '{name}' is also the served model name; rename one of them.");
            var defaults = SamplingParams.FromModel(model.Spec, GenerationConfigFile.Read(folder));
            defaults = defaults with { StopTokenIds = chat.StopIds(defaults.StopTokenIds) };
            // A vision-language model (its vision tower loaded with the language model) also takes images.
            var vision = model.IsVisionLanguage ? ServedVision.Create(folder, serve.Images) : null;
            return new ServedModel(engine, chat, name, defaults) { _ownsModel = true, Vision = vision };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    bool _ownsModel;

    /// <summary>The image path of a vision-language model (Qwen2-VL, Qwen2.5-VL); null for a text model.</summary>
    public ServedVision? Vision { get; init; }

    /// <summary>The engine.</summary>
    public InferenceEngine Engine { get; }

    /// <summary>Turns messages into prompt ids.</summary>
    public ChatPrompt Chat { get; }

    /// <summary>The tokenizer.</summary>
    public Tokenizer Tokenizer => Chat.Tokenizer;

    /// <summary>The base model's name.</summary>
    public string Name { get; }

    /// <summary>The model's generation defaults (generation_config.json), end-of-sequence ids included.</summary>
    public SamplingParams Defaults { get; }

    /// <summary>Every name a request's "model" may hold: the base first, then the adapters.</summary>
    public IReadOnlyList<string> ModelNames => [Name, .. Engine.AdapterNames];

    /// <summary>
    /// The adapter a request's model name selects: null for the base model (its name, or an empty name), the
    /// adapter's name otherwise. Throws an <see cref="EngineException"/> (UnknownModel) for any other name.
    /// </summary>
    public string? AdapterFor(string? model)
    {
        if (string.IsNullOrEmpty(model) || model == Name) return null;
        if (Engine.AdapterNames.Contains(model)) return model;
        throw new EngineException(EngineErrorKind.UnknownModel, $"The model '{model}' does not exist; this server has {string.Join(", ", ModelNames)}.");
    }

    /// <summary>
    /// Sampling for a request whose fields are null where the client left them out: those come from the model's
    /// generation_config.json (greedy unless it says do_sample), as ms-swift's deploy does. A missing max_tokens stays
    /// null: the engine generates up to the room the prompt leaves in max_model_len.
    /// </summary>
    public SamplingParams Sampling(int? maxTokens = null, double? temperature = null, double? topP = null, int? topK = null,
        double? repetitionPenalty = null, long? seed = null, IReadOnlyList<string>? stop = null, int? logprobs = null, bool ignoreEos = false,
        double? presencePenalty = null, double? frequencyPenalty = null, IReadOnlyDictionary<int, double>? logitBias = null)
    {
        var d = Defaults;
        return new SamplingParams
        {
            MaxTokens = maxTokens,
            Temperature = temperature ?? (d.DoSample ? d.Temperature : 0),
            TopP = topP ?? d.TopP,
            TopK = topK ?? (temperature is null && d.DoSample ? d.TopK : 0),
            RepetitionPenalty = repetitionPenalty ?? d.RepetitionPenalty,
            PresencePenalty = presencePenalty ?? 0,
            FrequencyPenalty = frequencyPenalty ?? 0,
            LogitBias = logitBias,
            Seed = seed,
            Stop = stop ?? [],
            StopTokenIds = d.StopTokenIds,
            IgnoreEos = ignoreEos,
            Logprobs = logprobs,
        };
    }

    /// <summary>Prompt ids of a conversation (messages as JSON elements or dictionaries, OpenAI's shape) with the generation prompt.</summary>
    public int[] EncodeChat(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools = null) => Chat.Encode(messages, tools);

    /// <summary>
    /// Prompt ids of a conversation with the generation prompt; <paramref name="tools"/> are OpenAI tool objects.
    /// The server and <see cref="OspreyChatClient"/> both come here, through <see cref="ChatMessageConversion"/>.
    /// </summary>
    /// <remarks>
    /// A conversation whose text is longer than <see cref="MaxPromptChars"/> is rendered once more to be measured and
    /// refused before tokenizing, since tokenizing megabytes only to refuse the result costs seconds and memory.
    /// </remarks>
    public int[] EncodeChat(IReadOnlyList<ChatTurn> turns, IReadOnlyList<JsonElement>? tools)
    {
        var messages = ChatMessageConversion.TemplateMessages(turns);
        var templateTools = ChatMessageConversion.TemplateTools(tools);
        long chars = 0;
        foreach (var t in turns) chars += t.Content?.Length ?? 0;
        // Templates may drop text (earlier replies' reasoning), so only the rendering decides.
        if (chars > MaxPromptChars) CheckPromptChars(Chat.Render(messages, templateTools).Length);
        return Chat.Encode(messages, templateTools);
    }

    /// <summary>
    /// Prompt ids of a conversation with images: each image's place in a turn's text is marked with
    /// <see cref="ImagePlaceholder"/>, and <paramref name="images"/> (from <see cref="ServedVision.Prepare"/>) are in
    /// the order of those marks. Each mark reaches the chat template as the model takes an image (a content part for
    /// LLaVA, the vision tokens in the text for Qwen2-VL) and becomes as many image tokens as its image has, as the
    /// model's transformers processor expands them (<see cref="ImagePrompt"/>). Throws an <see cref="OspreyException"/>
    /// for a text model or when the marks and images do not match.
    /// </summary>
    public int[] EncodeChat(IReadOnlyList<ChatTurn> turns, IReadOnlyList<JsonElement>? tools, IReadOnlyList<Images.ProcessedImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (Vision is null) throw new OspreyException($"{Name} is a text model; serve a vision-language model (Qwen2-VL, Qwen2.5-VL, LLaVA, LLaVA-NeXT) to send images.");
        var input = Vision.Input;
        var messages = ChatMessageConversion.TemplateMessages(turns).Select((m, i) =>
        {
            var content = turns[i].Content;
            if (content is null || !content.Contains(ImagePlaceholder, StringComparison.Ordinal)) return m;
            var node = JsonSerializer.SerializeToNode(m)!.AsObject();
            node["content"] = JsonSerializer.SerializeToNode(ImagePrompt.Content(content, input, Tokenizer, ImagePlaceholder));
            return (object?)JsonSerializer.SerializeToElement(node);
        }).ToList();
        var rendered = Chat.Render(messages, ChatMessageConversion.TemplateTools(tools));
        CheckPromptChars(rendered.Length);
        return ImagePrompt.Encode(Chat, input, rendered, images);
    }

    /// <summary>What marks an image's place in a turn's text for <see cref="EncodeChat(IReadOnlyList{ChatTurn}, IReadOnlyList{JsonElement}?, IReadOnlyList{Images.ProcessedImage})"/>
    /// (the server and <see cref="OspreyChatClient"/> write it for each image part). Its text is Qwen2-VL's vision start,
    /// image pad and vision end tokens, as ms-swift writes an <c>&lt;image&gt;</c> tag for that family; for every model
    /// it is only a mark, replaced as the model takes an image.</summary>
    public const string ImagePlaceholder = VisionPrompt.ImageBlock;

    /// <summary>Prompt ids of a raw text prompt (/v1/completions): the tokenizer's special tokens added as it adds them by default.</summary>
    /// <exception cref="EngineException">Of kind PromptTooLong when the text is longer than <see cref="MaxPromptChars"/>.</exception>
    public int[] EncodeText(string prompt)
    {
        CheckPromptChars(prompt.Length);
        return Tokenizer.EncodeIds(prompt);
    }

    /// <summary>
    /// The most characters a prompt that fits max_model_len can have: max_model_len tokens times the longest token's
    /// text (at least 16 characters, for normalizers that drop text). A longer prompt cannot fit, so it is refused
    /// without tokenizing it.
    /// </summary>
    public long MaxPromptChars => _maxPromptChars ??= (long)Engine.MaxModelLen * LongestTokenChars();

    long? _maxPromptChars;

    int LongestTokenChars()
    {
        var longest = 16;
        for (var id = 0; id < Tokenizer.VocabSize; id++) longest = Math.Max(longest, Tokenizer.IdToToken(id)?.Length ?? 0);
        return longest;
    }

    /// <summary>Refuses (PromptTooLong) a prompt of <paramref name="chars"/> characters that cannot fit max_model_len.</summary>
    public void CheckPromptChars(long chars)
    {
        if (chars > MaxPromptChars)
            throw new EngineException(EngineErrorKind.PromptTooLong,
                $"the prompt has {chars} characters, more than the {MaxPromptChars} that this server's max_model_len of {Engine.MaxModelLen} tokens can hold; shorten the prompt.");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Engine.Dispose();
        if (_ownsModel) Engine.Model.Dispose();
    }
}
