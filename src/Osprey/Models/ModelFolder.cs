namespace Osprey.Models;

/// <summary>Files of a Hugging Face model folder that travel with exported models and checkpoints.</summary>
public static class ModelFolder
{
    /// <summary>The tokenizer, chat-template and image-processor files, copied beside saved weights so the folder is
    /// usable alone (a vision-language model's images are processed by preprocessor_config.json's settings, or
    /// transformers 5's processor_config.json).</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
        "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "preprocessor_config.json", "processor_config.json",
    ];

    /// <summary>Copies the tokenizer files that exist in <paramref name="source"/> into <paramref name="target"/>; returns their names.</summary>
    public static IReadOnlyList<string> CopyTokenizerFiles(string source, string target)
    {
        var copied = new List<string>();
        foreach (var name in TokenizerFiles)
        {
            var from = Path.Combine(source, name);
            var to = Path.Combine(target, name);
            if (!File.Exists(from) || Path.GetFullPath(from) == Path.GetFullPath(to)) continue;
            File.Copy(from, to + ".tmp", overwrite: true);
            File.Move(to + ".tmp", to, overwrite: true);
            copied.Add(name);
        }
        return copied;
    }
}
