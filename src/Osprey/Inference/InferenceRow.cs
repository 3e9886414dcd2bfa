using System.Text.Json.Nodes;

namespace Osprey.Inference;

/// <summary>One row of an inference dataset: the record as read, the conversation to prompt with and its tools.</summary>
/// <param name="Record">The input object, written back out with the response added.</param>
/// <param name="Messages">The prompt conversation (a final assistant message, the label, removed).</param>
/// <param name="Tools">Tool schemas of the row, or null.</param>
/// <param name="Where">"FILE line N", for error messages.</param>
/// <param name="QueryFormat">True for ms-swift's query/response/history rows.</param>
public sealed record InferenceRow(JsonObject Record, List<object?> Messages, List<object?>? Tools, string Where, bool QueryFormat);
