using Osprey.Inference;
using Osprey.Inference.Constraints;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Models;

namespace Osprey.Serving;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a <see cref="ServedModel"/>: in-process chat with a
/// model, no HTTP. Messages go through the model's chat template, <see cref="ChatOptions"/> become the request's
/// sampling, and the request runs on the model's <see cref="InferenceEngine"/>, so many calls may run at once from
/// any thread. Composes with <c>ChatClientBuilder</c> middleware (function invocation, logging, caching).
/// </summary>
/// <remarks>
/// Options: <see cref="ChatOptions.MaxOutputTokens"/>, <see cref="ChatOptions.Temperature"/>,
/// <see cref="ChatOptions.TopP"/>, <see cref="ChatOptions.TopK"/>, <see cref="ChatOptions.Seed"/>,
/// <see cref="ChatOptions.StopSequences"/>, <see cref="ChatOptions.Instructions"/> (added to the system message),
/// <see cref="ChatOptions.ModelId"/> (a LoRA adapter's name selects it;
/// the base model's name or none runs the base), <see cref="ChatOptions.Tools"/> (function declarations, rendered
/// into the chat template as OpenAI tools), <see cref="ChatOptions.ResponseFormat"/> (JSON or a JSON schema, held
/// to by constrained decoding; see <see cref="JsonSchemaGrammar"/>) and the additional property <c>repetition_penalty</c>. Fields left out
/// come from the model's generation_config.json. When tools are given, Hermes <c>&lt;tool_call&gt;</c> blocks in
/// the reply come back as <see cref="FunctionCallContent"/> (see <see cref="ToolCallParser"/>). For a Qwen2-VL or
/// Qwen2.5-VL model, image <see cref="DataContent"/> (image/png, image/jpeg, image/webp, image/gif) in a message is
/// seen by the model where it stands among the message's text.
/// </remarks>
public sealed class OspreyChatClient : IChatClient
{
    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> that sets the repetition penalty.</summary>
    public const string RepetitionPenaltyKey = "repetition_penalty";

    readonly bool _ownsModel;
    int _disposed;

    /// <summary>A client over <paramref name="model"/>; disposing the client leaves the model running.</summary>
    public OspreyChatClient(ServedModel model) : this(model, ownsModel: false) { }

    OspreyChatClient(ServedModel model, bool ownsModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        _ownsModel = ownsModel;
        Metadata = new ChatClientMetadata("osprey", providerUri: null, defaultModelId: model.Name);
    }

    /// <summary>
    /// Loads an HF model folder (see <see cref="ServedModel.Load"/>) and returns a client that owns it: disposing
    /// the client stops the engine and frees the model.
    /// </summary>
    public static OspreyChatClient Load(string folder, ModelLoadOptions load, ServeOptions? serve = null) =>
        new(ServedModel.Load(folder, load, serve), ownsModel: true);

    /// <summary>The model the client runs.</summary>
    public ServedModel Model { get; }

    /// <summary>Provider "osprey" and the base model's name.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var call = Prepare(messages, options);
        var text = new StringBuilder();
        EngineUpdate? last = null;
        await foreach (var u in Model.Engine.Submit(call.Request, cancellationToken).ConfigureAwait(false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            text.Append(u.TextDelta);
            last = u;
        }
        var contents = new List<AIContent>();
        var finish = Finish(last?.Reason);
        var reply = text.ToString();
        if (call.HasTools)
        {
            var parsed = ToolCallParser.Parse(reply);
            if (parsed.Calls.Count > 0)
            {
                reply = parsed.Text;
                finish = ChatFinishReason.ToolCalls;
            }
            if (reply.Length > 0) contents.Add(new TextContent(reply));
            contents.AddRange(parsed.Calls.Select(ToContent));
        }
        else
        {
            contents.Add(new TextContent(reply));
        }
        var message = new ChatMessage(ChatRole.Assistant, contents) { MessageId = call.Id };
        return new ChatResponse(message)
        {
            ResponseId = call.Id,
            ModelId = call.ModelId,
            CreatedAt = call.Created,
            FinishReason = finish,
            Usage = Usage(last, call.Request.PromptIds.Count),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var call = Prepare(messages, options);
        // With tools, text that may open a <tool_call> block is held back until it is clear what it is; after
        // the first block opens, the rest is parsed at the end.
        var tools = call.HasTools ? new ToolCallStream() : null;
        EngineUpdate? last = null;
        await foreach (var u in Model.Engine.Submit(call.Request, cancellationToken).ConfigureAwait(false))
        {
            // Updates already queued are not handed out once the caller has cancelled.
            cancellationToken.ThrowIfCancellationRequested();
            last = u;
            if (u.TextDelta.Length == 0) continue;
            var delta = tools is null ? u.TextDelta : tools.Add(u.TextDelta);
            if (delta.Length > 0) yield return Update(call, [new TextContent(delta)]);
        }
        var finish = Finish(last?.Reason);
        var tail = new List<AIContent>();
        if (tools is not null)
        {
            var (text, calls) = tools.Finish();
            if (text.Length > 0) tail.Add(new TextContent(text));
            tail.AddRange(calls.Select(ToContent));
            if (calls.Count > 0) finish = ChatFinishReason.ToolCalls;
        }
        var usage = Usage(last, call.Request.PromptIds.Count);
        tail.Add(new UsageContent(usage));
        var final = Update(call, tail);
        final.FinishReason = finish;
        yield return final;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType == typeof(ServedModel)) return Model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Frees the model when the client loaded it (<see cref="Load"/>); otherwise does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _ownsModel) Model.Dispose();
    }

    sealed record Call(string Id, string ModelId, DateTimeOffset Created, EngineRequest Request, bool HasTools);

    Call Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var adapter = Model.AdapterFor(options?.ModelId);
        var tools = ChatMessageConversion.FromAITools(options?.Tools);
        var images = Model.Vision is null ? null : new List<(byte[] Data, string Where)>();
        var turns = ChatMessageConversion.FromChatMessages(messages, images);
        // ChatOptions.Instructions join the first system message, or become one.
        if (!string.IsNullOrWhiteSpace(options?.Instructions)) turns = ChatMessageConversion.WithInstructions(turns, options.Instructions);
        int[] prompt;
        List<Images.ProcessedImage>? patches = null;
        if (images is { Count: > 0 })
        {
            patches = images.Select(i => Model.Vision!.Prepare(i.Data, i.Where)).ToList();
            prompt = Model.EncodeChat(turns, tools, patches);
        }
        else prompt = Model.EncodeChat(turns, tools);
        var sampling = Model.Sampling(
            maxTokens: options?.MaxOutputTokens,
            temperature: options?.Temperature,
            topP: options?.TopP,
            topK: options?.TopK,
            repetitionPenalty: RepetitionPenalty(options),
            seed: options?.Seed,
            stop: options?.StopSequences is { Count: > 0 } s ? s.ToArray() : null,
            presencePenalty: options?.PresencePenalty,
            frequencyPenalty: options?.FrequencyPenalty) with { Grammar = ToolGrammar(options) ?? Grammar(options?.ResponseFormat) };
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        return new Call(id, adapter ?? Model.Name, DateTimeOffset.UtcNow, new EngineRequest(prompt, sampling, adapter, patches), tools is not null);
    }

    /// <summary>
    /// <see cref="ChatResponseFormat.Json"/> (any JSON object) and <c>ChatResponseFormat.ForJsonSchema</c>
    /// (a value of the schema) become constrained decoding; text, or none, leaves the output free.
    /// </summary>
    static JsonSchemaGrammar? Grammar(ChatResponseFormat? format) => format switch
    {
        ChatResponseFormatJson { Schema: { } schema } => JsonSchemaGrammar.FromSchema(schema),
        ChatResponseFormatJson => JsonSchemaGrammar.AnyObject,
        _ => null,
    };

    /// <summary>
    /// <see cref="ChatToolMode.RequireAny"/> and <c>ChatToolMode.RequireSpecific(name)</c> force one call through
    /// the grammar the HTTP API uses for tool_choice "required" / a named function (<see cref="ToolCallGrammar"/>):
    /// the reply is one call whose arguments match the function's schema. It takes the place of a response format,
    /// as a forced call does in the API. Auto or none leave the output free.
    /// </summary>
    static JsonSchemaGrammar? ToolGrammar(ChatOptions? options)
    {
        if (options?.ToolMode is not RequiredChatToolMode required) return null;
        var functions = (options.Tools ?? []).OfType<AIFunctionDeclaration>()
            .Select((f, i) => (Function: f, Path: $"ChatOptions.Tools[{i}].JsonSchema"))
            .Where(f => required.RequiredFunctionName is not { } name || f.Function.Name == name)
            .Select(f => (f.Function.Name, f.Function.JsonSchema.ValueKind == JsonValueKind.Undefined ? (JsonElement?)null : f.Function.JsonSchema, f.Path))
            .ToList();
        if (functions.Count == 0)
            throw new ArgumentException(required.RequiredFunctionName is { } missing
                ? $"ChatOptions.ToolMode requires the function '{missing}', which is not among ChatOptions.Tools; add it to Tools or name one that is there."
                : "ChatOptions.ToolMode requires a tool call but ChatOptions.Tools declares no function; add one or use ChatToolMode.Auto.", nameof(options));
        return ToolCallGrammar.For(functions);
    }

    static double? RepetitionPenalty(ChatOptions? options)
    {
        if (options?.AdditionalProperties is null || !options.AdditionalProperties.TryGetValue(RepetitionPenaltyKey, out var value) || value is null) return null;
        return value switch
        {
            double d => d,
            float f => f,
            int i => i,
            long l => l,
            decimal m => (double)m,
            string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
            _ => throw new EngineException(EngineErrorKind.InvalidRequest, $"{RepetitionPenaltyKey} must be a number, got {value}."),
        };
    }

    static FunctionCallContent ToContent(ParsedToolCall call) =>
        new("call_" + Guid.NewGuid().ToString("N")[..24], call.Name, call.Arguments());

    static ChatFinishReason? Finish(Inference.FinishReason? reason) => reason switch
    {
        null => null,
        Inference.FinishReason.Length => ChatFinishReason.Length,
        _ => ChatFinishReason.Stop,
    };

    static UsageDetails Usage(EngineUpdate? last, int promptTokens)
    {
        var prompt = last?.PromptTokens ?? promptTokens;
        var completion = last?.CompletionTokens ?? 0;
        return new UsageDetails { InputTokenCount = prompt, OutputTokenCount = completion, TotalTokenCount = prompt + completion };
    }

    static ChatResponseUpdate Update(Call call, IList<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = call.Id,
        MessageId = call.Id,
        ModelId = call.ModelId,
        CreatedAt = call.Created,
    };
}
