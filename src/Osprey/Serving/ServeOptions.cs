namespace Osprey.Serving;

/// <summary>What to serve besides the model folder: names, chat template, adapters, engine limits.</summary>
public sealed record ServeOptions
{
    /// <summary>The name clients use for the base model (--served_model_name); null: the folder's name.</summary>
    public string? ServedModelName { get; init; }
    /// <summary>--template: a Jinja file, a tokenizer's named template or an ms-swift name; null: the tokenizer's own.</summary>
    public string? Template { get; init; }
    /// <summary>LoRA adapters by the name requests select them with (--adapters name=path).</summary>
    public IReadOnlyDictionary<string, string> Adapters { get; init; } = new Dictionary<string, string>();
    /// <summary>Engine limits (--max_batch_size, --max_model_len, queue).</summary>
    public EngineOptions Engine { get; init; } = new();
    /// <summary>Image limits of a vision-language model's requests (--allow_remote_images, --max_images_per_request, --max_image_bytes).</summary>
    public ImageRequestOptions Images { get; init; } = new();
}
