using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>GET /v1/models: the base model and each LoRA adapter (whose parent is the base).</summary>
internal sealed class ModelsRoute(ServedModel model)
{
    sealed record ModelList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<ModelCard> Data);

    sealed record ModelCard(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("owned_by")] string OwnedBy,
        [property: JsonPropertyName("parent"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Parent,
        [property: JsonPropertyName("max_model_len")] int MaxModelLen);

    public Task Handle(HttpContext context)
    {
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cards = model.ModelNames.Select(name => new ModelCard(name, "model", created, "osprey", name != model.Name ? model.Name : null, model.Engine.MaxModelLen)).ToList();
        return HttpJson.WriteJson(context, new ModelList("list", cards));
    }
}
