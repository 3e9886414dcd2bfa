using System.Text;

namespace Osprey.Inference;

/// <summary>
/// Turns a request's growing output into stable text increments with OpenAI's stop-string rule: the output ends
/// just before the first stop string, which is not part of the text. Text that could still become the start of a
/// stop string is held back until the next tokens rule that out, so no increment ever has to be taken back; an
/// incomplete UTF-8 character (U+FFFD at the end of a byte-level decode) is held back too.
/// </summary>
/// <remarks>
/// Decoding is incremental, so each token costs a few tokens' worth of decoding however long the output gets:
/// the text a token adds is decode(ids[p..]) minus decode(ids[p..r]), where r is the first token not yet turned
/// into text and p lags a few tokens behind it. Both decodes start at the same token, so whatever a decoder does
/// at the start of a text (SentencePiece drops the leading space) cancels out.
/// </remarks>
public sealed class StopMatcher
{
    const int Lag = 4;
    readonly Func<IReadOnlyList<int>, string> _decode;
    readonly IReadOnlyList<string> _stops;
    readonly List<int> _ids = [];
    readonly StringBuilder _full = new();
    int _prefix, _read, _emitted;
    string _prefixText = "";

    /// <summary>Matches <paramref name="stops"/> in text decoded by <paramref name="decode"/>.</summary>
    public StopMatcher(Func<IReadOnlyList<int>, string> decode, IReadOnlyList<string> stops)
    {
        _decode = decode;
        _stops = stops;
    }

    /// <summary>The stop string found, once one is.</summary>
    public string? Stopped { get; private set; }

    /// <summary>The text handed out so far.</summary>
    public string Text => _full.ToString(0, _emitted);

    /// <summary>Adds a token; returns the new stable text. After a stop string is found, <see cref="Stopped"/> is set and the text ends before it.</summary>
    public string Add(int id)
    {
        if (Stopped is not null) return "";
        _ids.Add(id);
        var window = _decode(_ids.GetRange(_prefix, _ids.Count - _prefix));
        // A character still incomplete at the end waits for the next token.
        if (window.Length > _prefixText.Length && window[^1] != '\uFFFD' && !char.IsHighSurrogate(window[^1]))
        {
            _full.Append(window, Math.Min(_prefixText.Length, window.Length), window.Length - Math.Min(_prefixText.Length, window.Length));
            _read = _ids.Count;
            _prefix = Math.Max(0, _read - Lag);
            _prefixText = _decode(_ids.GetRange(_prefix, _read - _prefix));
        }
        return Scan();
    }

    /// <summary>Stops at the earliest stop string in text not yet handed out; otherwise hands out all but a possible stop-string start.</summary>
    string Scan()
    {
        var full = _full.ToString();
        int best = -1;
        string? which = null;
        foreach (var s in _stops)
        {
            // Only a match that ends in text not yet handed out can be new.
            var at = full.IndexOf(s, Math.Max(0, _emitted - s.Length + 1), StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) (best, which) = (at, s);
        }
        if (which is not null)
        {
            Stopped = which;
            return Take(full, Math.Max(_emitted, best));
        }
        var end = full.Length;
        var hold = 0;
        foreach (var s in _stops)
            for (var k = Math.Min(s.Length - 1, end - _emitted); k > hold; k--)
                if (string.CompareOrdinal(full, end - k, s, 0, k) == 0) { hold = k; break; }
        return Take(full, end - hold);
    }

    /// <summary>The request is over: returns whatever text is still held back (none after a stop string).</summary>
    public string Finish()
    {
        if (Stopped is not null) return "";
        if (_read < _ids.Count)
        {
            var window = _decode(_ids.GetRange(_prefix, _ids.Count - _prefix));
            if (window.Length > _prefixText.Length) _full.Append(window, _prefixText.Length, window.Length - _prefixText.Length);
            _read = _ids.Count;
        }
        var full = _full.ToString();
        return Take(full, full.Length);
    }

    string Take(string full, int end)
    {
        if (end <= _emitted) return "";
        var delta = full[_emitted..end];
        _emitted = end;
        return delta;
    }
}
