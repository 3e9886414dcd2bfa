namespace Osprey.Serving;

/// <summary>
/// Turns a request's growing output into stable text increments with OpenAI's stop-string rule: the output ends
/// just before the first stop string, which is not part of the text. Text that could still become the start of a
/// stop string is held back until the next tokens rule that out, so no increment ever has to be taken back; an
/// incomplete UTF-8 character (U+FFFD at the end of a byte-level decode) is held back too.
/// </summary>
public sealed class StopMatcher
{
    readonly Func<IReadOnlyList<int>, string> _decode;
    readonly IReadOnlyList<string> _stops;
    readonly List<int> _ids = [];
    int _emitted;

    /// <summary>Matches <paramref name="stops"/> in text decoded by <paramref name="decode"/>.</summary>
    public StopMatcher(Func<IReadOnlyList<int>, string> decode, IReadOnlyList<string> stops)
    {
        _decode = decode;
        _stops = stops;
    }

    /// <summary>The stop string found, once one is.</summary>
    public string? Stopped { get; private set; }

    /// <summary>The text handed out so far.</summary>
    public string Text { get; private set; } = "";

    /// <summary>Adds a token; returns the new stable text. After a stop string is found, <see cref="Stopped"/> is set and the text ends before it.</summary>
    public string Add(int id)
    {
        if (Stopped is not null) return "";
        _ids.Add(id);
        var full = _decode(_ids);
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
        while (end > _emitted && full[end - 1] == '\uFFFD') end--;
        if (end > 0 && char.IsHighSurrogate(full[end - 1])) end--;
        // Hold back a tail that is a proper prefix of some stop string.
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
        var full = _decode(_ids);
        return Take(full, full.Length);
    }

    string Take(string full, int end)
    {
        if (end <= _emitted) return "";
        var delta = full[_emitted..end];
        _emitted = end;
        Text += delta;
        return delta;
    }
}
