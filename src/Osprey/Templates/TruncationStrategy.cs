namespace Osprey.Templates;

/// <summary>
/// What to do with an encoded sample longer than <c>--max_length</c>, as ms-swift's <c>--truncation_strategy</c>
/// (swift/llm/argument/base_args/template_args.py, swift/template/base.py <c>_encode_truncated</c>).
/// </summary>
public enum TruncationStrategy
{
    /// <summary>Drop the sample (ms-swift's default).</summary>
    Delete,

    /// <summary>Keep the last max_length tokens (cut from the left).</summary>
    Left,

    /// <summary>Keep the first max_length tokens (cut from the right).</summary>
    Right,
}
