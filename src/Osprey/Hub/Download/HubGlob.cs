using System.Text;
using System.Text.RegularExpressions;

namespace Osprey.Hub.Download;

/// <summary>
/// fnmatch-like file selection, as huggingface_hub's allow/ignore patterns: <c>*</c> matches any run of
/// characters (slashes included), <c>?</c> one character, <c>[seq]</c>/<c>[!seq]</c> a set; a pattern
/// ending in <c>/</c> selects everything under that folder.
/// </summary>
public static class HubGlob
{
    /// <summary>True when <paramref name="path"/> matches <paramref name="pattern"/>.</summary>
    public static bool IsMatch(string path, string pattern)
    {
        if (pattern.EndsWith('/')) pattern += "*";
        return new Regex(ToRegex(pattern), RegexOptions.CultureInvariant | RegexOptions.Singleline).IsMatch(path);
    }

    /// <summary>The paths kept by <paramref name="include"/> (all when empty) and not dropped by <paramref name="exclude"/>.</summary>
    public static IEnumerable<string> Filter(IEnumerable<string> paths, IReadOnlyList<string>? include, IReadOnlyList<string>? exclude) =>
        paths.Where(p => (include is null || include.Count == 0 || include.Any(g => IsMatch(p, g)))
                         && (exclude is null || !exclude.Any(g => IsMatch(p, g))));

    private static string ToRegex(string pattern)
    {
        var sb = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*': sb.Append(".*"); break;
                case '?': sb.Append('.'); break;
                case '[':
                    var end = pattern.IndexOf(']', i + 2 <= pattern.Length ? i + 2 : i + 1);
                    if (end < 0) { sb.Append(@"\["); break; }
                    var set = pattern.Substring(i + 1, end - i - 1);
                    var negate = set.StartsWith('!');
                    if (negate) set = set[1..];
                    sb.Append('[').Append(negate ? "^" : "").Append(set.Replace(@"\", @"\\", StringComparison.Ordinal)).Append(']');
                    i = end;
                    break;
                default: sb.Append(Regex.Escape(c.ToString())); break;
            }
        }
        return sb.Append('$').ToString();
    }
}
