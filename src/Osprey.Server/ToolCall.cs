namespace Osprey.Server;

/// <summary>One function call the model asked for, as the API returns it.</summary>
/// <param name="Id">"call_" plus a random hex id.</param>
/// <param name="Name">The function's name.</param>
/// <param name="Arguments">The arguments as a JSON string (OpenAI's shape).</param>
public sealed record ToolCall(string Id, string Name, string Arguments);
