using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>
/// GET /v1/models: the base model and each LoRA adapter (whose parent is the base); GET /v1/models/{id}: one of them,
/// or OpenAI's 404 <c>model_not_found</c>.
/// </summary>
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
        return HttpJson.WriteJson(context, new ModelList("list", model.ModelNames.Select(name => Card(name, created)).ToList()));
    }

    public Task HandleOne(HttpContext context, string id)
    {
        if (!model.ModelNames.Contains(id))
            throw new ApiException(404, $"The model '{id}' does not exist on this server; it serves {string.Join(", ", model.ModelNames)} (GET /v1/models lists them).", "model", "model_not_found");
        return HttpJson.WriteJson(context, Card(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
    }

    ModelCard Card(string name, long created) =>
        new(name, "model", created, "osprey", name != model.Name ? model.Name : null, model.Engine.MaxModelLen);
}
