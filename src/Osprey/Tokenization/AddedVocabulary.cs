namespace Osprey.Tokenization;

/// <summary>An added token of tokenizer.json (<c>added_tokens</c>) or tokenizer_config.json (<c>added_tokens_decoder</c>).</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool Normalized, bool SingleWord);

/// <summary>
/// Finds added tokens in text before the model sees it: leftmost-longest matches, honouring lstrip/rstrip
/// (the token absorbs adjacent whitespace) and single_word (only whole words), as HF tokenizers does.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private sealed class Node
    {
        public Dictionary<char, Node>? Children;
        public AddedToken? Token;
    }

    private readonly Node _root = new();
    private readonly bool[] _firstChars = new bool[65536];

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        foreach (var token in tokens)
        {
            if (token.Content.Length == 0) continue;
            var node = _root;
            foreach (var c in token.Content)
            {
                node.Children ??= new Dictionary<char, Node>();
                if (!node.Children.TryGetValue(c, out var next)) node.Children[c] = next = new Node();
                node = next;
            }
            node.Token ??= token;
            _firstChars[token.Content[0]] = true;
            IsEmpty = false;
        }
    }

    public bool IsEmpty { get; } = true;

    /// <summary>Matches as (start, end, token) in the text, non-overlapping, left to right.</summary>
    public List<(int Start, int End, AddedToken Token)> FindAll(string text)
    {
        var result = new List<(int, int, AddedToken)>();
        if (IsEmpty) return result;
        var previousEnd = 0;
        var i = 0;
        while (i < text.Length)
        {
            if (!_firstChars[text[i]])
            {
                i++;
                continue;
            }
            var node = _root;
            AddedToken? best = null;
            var bestEnd = -1;
            for (var j = i; j < text.Length && node.Children is not null && node.Children.TryGetValue(text[j], out var next); j++)
            {
                node = next;
                if (node.Token is not null)
                {
                    best = node.Token;
                    bestEnd = j + 1;
                }
            }
            if (best is null || (best.SingleWord && !IsWholeWord(text, i, bestEnd)))
            {
                i++;
                continue;
            }
            var start = i;
            var end = bestEnd;
            if (best.LStrip)
            {
                while (start > previousEnd && char.IsWhiteSpace(text[start - 1])) start--;
            }
            if (best.RStrip)
            {
                while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            }
            result.Add((start, end, best));
            previousEnd = end;
            i = end;
        }
        return result;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    private static bool IsWholeWord(string text, int start, int end) =>
        (start == 0 || !IsWordChar(text[start - 1])) && (end == text.Length || !IsWordChar(text[end]));
}
