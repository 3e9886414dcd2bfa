namespace Osprey.Inference.Constraints;

/// <summary>
/// One request's constrained decoding: where the output stands in the grammar, which tokens may come next and
/// whether it may end. Advanced with each token the request is given.
/// </summary>
internal sealed class GrammarMatcher(JsonSchemaGrammar grammar, TokenVocabulary vocabulary)
{
    GrammarState _state = grammar.Start();
    TokenMask? _mask;

    /// <summary>True when the output so far is a complete value (end-of-sequence may come).</summary>
    public bool CanEnd => _state.CanEnd;

    /// <summary>True when no token can continue the output (the tokenizer cannot write what the schema needs next).</summary>
    public bool IsDead => _state.IsDead;

    /// <summary>The tokens allowed next (end-of-sequence not included); computed once per step.</summary>
    public TokenMask Allowed() => _mask ??= _state.IsDead ? TokenMask.None : vocabulary.Allowed(_state);

    /// <summary>Moves past token <paramref name="id"/> (an end-of-sequence or special token writes nothing).</summary>
    public void Advance(int id)
    {
        _state = _state.Step(vocabulary.Bytes(id));
        _mask = null;
    }
}
