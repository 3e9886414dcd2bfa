using System.Text.Json.Nodes;

namespace Osprey.Evaluation;

/// <summary>
/// One verifiable instruction of an IFEval prompt: its id (as <c>detectable_format:title</c>) and its arguments from
/// the row's kwargs, with null and empty values dropped (the hub's Parquet copy gives every row every key, null where
/// unused; the reference harnesses drop them the same way).
/// </summary>
public sealed record IfEvalInstruction(string Id, JsonObject Args);
