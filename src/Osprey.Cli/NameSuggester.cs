namespace Osprey.Cli;

/// <summary>Finds the name a user most likely meant, for "did you mean ...?" hints.</summary>
internal static class NameSuggester
{
    /// <summary>
    /// The candidate closest to <paramref name="typed"/>, or null when none is close enough to be a useful
    /// guess; a wrong suggestion misleads more than none.
    /// </summary>
    public static string? Closest(string typed, IEnumerable<string> candidates)
    {
        var typedKey = Key(typed);
        if (typedKey.Length == 0)
        {
            return null;
        }

        // Typos in flag names are mostly one or two keystrokes; allow more only for long names.
        var limit = Math.Clamp(typedKey.Length / 3, 1, 3);
        string? best = null;
        var bestDistance = int.MaxValue;
        string? partial = null;
        foreach (var candidate in candidates.Distinct())
        {
            var candidateKey = Key(candidate);
            var distance = Distance(typedKey, candidateKey);
            if (distance <= limit && distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }

            // A truncated or over-long name ("--new_tokens" for "--max_new_tokens") is far in edit distance
            // but obvious to a person; keep the tightest such match as a fallback.
            if (typedKey.Length >= 3 && candidateKey.Length >= 3
                && (candidateKey.Contains(typedKey, StringComparison.Ordinal) || typedKey.Contains(candidateKey, StringComparison.Ordinal))
                && (partial is null || Math.Abs(Key(partial).Length - typedKey.Length) > Math.Abs(candidateKey.Length - typedKey.Length)))
            {
                partial = candidate;
            }
        }

        return best ?? partial;
    }

    // Case and the kebab/snake spelling are not what a user got wrong, so they do not count as edits.
    private static string Key(string name) => name.Replace('-', '_').ToLowerInvariant();

    /// <summary>Edit distance where swapping two neighbouring letters counts as one edit (optimal string alignment).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                var value = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    value = Math.Min(value, d[i - 2, j - 2] + 1);
                }

                d[i, j] = value;
            }
        }

        return d[a.Length, b.Length];
    }
}
