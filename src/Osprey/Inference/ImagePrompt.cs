using Osprey.Datasets;
using Osprey.Models;
using Osprey.Tokenization;

namespace Osprey.Inference;

/// <summary>
/// Prompts with images for any vision-language model, as its transformers processor builds them: each image's place
/// in a message (an <c>&lt;image&gt;</c> tag, or a marker the server writes) reaches the chat template as the model
/// expects it (<see cref="VisionInput.ImagesAsContentParts"/>: a <c>{"type": "image"}</c> content part for LLaVA;
/// otherwise the start, placeholder and end tokens in the text, ms-swift's rendering for Qwen2-VL), and after rendering
/// the k-th placeholder token is repeated once per token of image k (<see cref="VisionInput.TokenCount"/>).
/// </summary>
public static class ImagePrompt
{
    /// <summary>The placeholder token's text (the tokenizer's token for the model's image token id).</summary>
    public static string PadToken(VisionInput input, Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return Token(tokenizer, input.ImageTokenId);
    }

    /// <summary>What one image stands for in message text before expansion: start, one placeholder, end.</summary>
    public static string Block(VisionInput input, Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return (input.StartTokenId is int s ? Token(tokenizer, s) : "") + Token(tokenizer, input.ImageTokenId) + (input.EndTokenId is int e ? Token(tokenizer, e) : "");
    }

    static string Token(Tokenizer tokenizer, int id) =>
        tokenizer.IdToToken(id) ?? throw new OspreyException($"the tokenizer has no token for config.json's image token id {id}; the tokenizer and config do not match.");

    /// <summary>Template messages for (role, text) pairs whose text marks each image with <paramref name="marker"/>.</summary>
    public static IReadOnlyList<object?> Messages(IEnumerable<(string Role, string Text)> messages, VisionInput input, Tokenizer tokenizer, string marker = MultimodalRow.ImageTag)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return messages.Select(m => (object?)InferenceDataset.Message(m.Role, Content(m.Text, input, tokenizer, marker))).ToList();
    }

    /// <summary>A message's content: text with <paramref name="marker"/>s as the model's template takes it.</summary>
    public static object Content(string text, VisionInput input, Tokenizer tokenizer, string marker = MultimodalRow.ImageTag)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(input);
        if (!text.Contains(marker, StringComparison.Ordinal)) return text;
        if (!input.ImagesAsContentParts) return text.Replace(marker, Block(input, tokenizer), StringComparison.Ordinal);
        var parts = new List<object?>();
        var pieces = text.Split(marker);
        for (var i = 0; i < pieces.Length; i++)
        {
            if (i > 0) parts.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = "image" });
            if (pieces[i].Length > 0) parts.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = "text", ["text"] = pieces[i] });
        }
        return parts;
    }

    /// <summary>Repeats the k-th <paramref name="padToken"/> of <paramref name="rendered"/> <paramref name="counts"/>[k] times.</summary>
    public static string Expand(string rendered, string padToken, IReadOnlyList<int> counts)
    {
        ArgumentNullException.ThrowIfNull(rendered);
        ArgumentNullException.ThrowIfNull(counts);
        var parts = rendered.Split(padToken);
        if (parts.Length - 1 != counts.Count)
            throw new OspreyException($"the rendered prompt has {parts.Length - 1} image placeholder(s) '{padToken}' for {counts.Count} image(s); the chat template must render one placeholder per image.");
        var sb = new System.Text.StringBuilder(parts[0]);
        for (var k = 0; k < counts.Count; k++)
        {
            for (var i = 0; i < counts[k]; i++) sb.Append(padToken);
            sb.Append(parts[k + 1]);
        }
        return sb.ToString();
    }

    /// <summary>The prompt ids of rendered messages with <paramref name="images"/> expanded in.</summary>
    public static int[] Encode(ChatPrompt chat, VisionInput input, string rendered, IReadOnlyList<Images.ProcessedImage> images)
    {
        ArgumentNullException.ThrowIfNull(chat);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(images);
        return chat.EncodeRendered(Expand(rendered, PadToken(input, chat.Tokenizer), images.Select(input.TokenCount).ToList()));
    }
}
