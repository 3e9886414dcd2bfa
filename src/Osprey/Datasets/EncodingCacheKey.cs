using System.Security.Cryptography;
using System.Text;

namespace Osprey.Datasets;

/// <summary>
/// Builds the content-addressed key of an encoding: every input that changes the samples. Dataset files count by
/// full path, size and modification time (<see cref="AddFile"/>) or by content (<see cref="AddFileContent"/>).
/// </summary>
public sealed class EncodingCacheKey
{
    private readonly StringBuilder _text = new("osprey-encoded-v1\n");

    /// <summary>Adds a named value.</summary>
    public EncodingCacheKey Add(string name, string? value)
    {
        _text.Append(name).Append('=').Append(value is null ? "<null>" : value.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
        return this;
    }

    /// <summary>Adds a file by path, size and modification time (cheap; an edited file changes its mtime).</summary>
    public EncodingCacheKey AddFile(string path)
    {
        var info = new FileInfo(path);
        return Add("file", info.Exists
            ? $"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}"
            : $"{Path.GetFullPath(path)}|missing");
    }

    /// <summary>Adds a file by the SHA-256 of its contents (for small files such as tokenizers).</summary>
    public EncodingCacheKey AddFileContent(string path)
    {
        if (!File.Exists(path)) return Add("content", Path.GetFileName(path) + "|missing");
        using var stream = File.OpenRead(path);
        return Add("content", Path.GetFileName(path) + "|" + Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    /// <summary>
    /// Adds a --dataset entry (<c>path[:subset][#N]</c>): the files it names (a folder's files recursively) by
    /// <see cref="AddFile"/>, or the entry itself when it is no local path (a hub id).
    /// </summary>
    public EncodingCacheKey AddDatasetEntry(string entry)
    {
        Add("dataset", entry);
        foreach (var candidate in Candidates(entry))
        {
            if (File.Exists(candidate)) return AddFile(candidate);
            if (Directory.Exists(candidate))
            {
                foreach (var f in Directory.EnumerateFiles(candidate, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)) AddFile(f);
                return this;
            }
        }
        return this;
    }

    private static IEnumerable<string> Candidates(string entry)
    {
        yield return entry;
        var hash = entry.LastIndexOf('#');
        var noCount = hash > 0 ? entry[..hash] : entry;
        yield return noCount;
        var colon = noCount.LastIndexOf(':');
        if (colon > 1) yield return noCount[..colon]; // not a Windows drive letter
    }

    /// <summary>Adds the tokenizer files of a model folder by content (tokenizer*, vocab*, merges*, special_tokens_map*, added_tokens*, chat_template*).</summary>
    public EncodingCacheKey AddTokenizerFolder(string folder)
    {
        string[] prefixes = ["tokenizer", "vocab", "merges", "special_tokens_map", "added_tokens", "chat_template", "spiece", "sentencepiece"];
        var files = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder).Where(f => prefixes.Any(p => Path.GetFileName(f).StartsWith(p, StringComparison.OrdinalIgnoreCase))).Order(StringComparer.Ordinal)
            : Enumerable.Empty<string>();
        foreach (var f in files) AddFileContent(f);
        return this;
    }

    /// <summary>The canonical text of everything added.</summary>
    public override string ToString() => _text.ToString();

    /// <summary>The key: hex SHA-256 of the canonical text (first 32 chars).</summary>
    public string Hash => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_text.ToString())))[..32];
}
