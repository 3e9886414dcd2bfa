using Osprey.Tokenization;

namespace Osprey.Templates;

/// <summary>The special-token text a named template writes: BOS/EOS, and whether the tokenizer's post-processor adds a BOS.</summary>
/// <param name="Bos">The BOS token's text, or null.</param>
/// <param name="Eos">The EOS token's text, or null.</param>
/// <param name="TokenizerAddsBos">True when encoding with special tokens puts a BOS in front (ms-swift's auto_add_bos uses it).</param>
public sealed record NamedTemplateTokens(string? Bos, string? Eos, bool TokenizerAddsBos)
{
    /// <summary>No special tokens known.</summary>
    public static readonly NamedTemplateTokens None = new(null, null, false);

    /// <summary>Reads the BOS/EOS of a tokenizer and whether its post-processor adds the BOS.</summary>
    public static NamedTemplateTokens FromTokenizer(Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var bos = tokenizer.BosToken;
        var adds = false;
        if (bos?.Id is { } bosId)
        {
            var with = tokenizer.Encode("a", addSpecialTokens: true).Ids;
            var without = tokenizer.Encode("a", addSpecialTokens: false).Ids;
            adds = with.Length > without.Length && with[0] == bosId;
        }
        return new NamedTemplateTokens(bos?.Content, tokenizer.EosToken?.Content, adds);
    }
}
