using Osprey.Templates;

namespace Osprey.Datasets;

/// <summary>The shape a dataset's rows were recognised as (logged per dataset).</summary>
public enum DatasetFormat
{
    /// <summary>OpenAI-style <c>messages</c> (system/user/assistant/tool roles, tool_calls).</summary>
    Messages,
    /// <summary>ShareGPT <c>conversations</c> with from/value (human/gpt/system/...).</summary>
    ShareGpt,
    /// <summary>Alpaca: instruction/input/output, optional system/history.</summary>
    Alpaca,
    /// <summary>query/response/history/system.</summary>
    QueryResponse,
    /// <summary>Plain <c>text</c> (pre-training), also .txt files (one document per line).</summary>
    Text,
    /// <summary>Preference pairs: chosen/rejected or rejected_response/rejected_messages.</summary>
    Preference,
    /// <summary>KTO: a conversation plus <c>label</c> true/false.</summary>
    Kto,
}
