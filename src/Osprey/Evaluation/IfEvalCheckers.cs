using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Osprey.Evaluation;

/// <summary>
/// IFEval's 25 verifiable instructions, each checked as the paper's reference implementation (google-research
/// instruction_following_eval, instructions.py) checks it: the same regular expressions, splits, strips and
/// relations ("less than" is &lt;, "at least" is ≥). Keyword arguments are the reference's names. Sentence counts,
/// capital-word tokens and language detection use <see cref="IfEvalText"/> and <see cref="LanguageGuess"/> in place of
/// nltk and langdetect (see docs/evaluation.md for where they can differ). An unknown id or a missing argument is an
/// <see cref="OspreyException"/> naming both.
/// </summary>
public static class IfEvalCheckers
{
    /// <summary>The instruction ids checked here (the reference registry's 25).</summary>
    public static IReadOnlyList<string> Ids { get; } =
    [
        "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
        "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
        "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
        "detectable_content:number_placeholders", "detectable_content:postscript", "detectable_format:number_bullet_lists",
        "detectable_format:constrained_response", "detectable_format:number_highlighted_sections",
        "detectable_format:multiple_sections", "detectable_format:json_format", "detectable_format:title",
        "combination:two_responses", "combination:repeat_prompt", "startend:end_checker",
        "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
        "punctuation:no_comma", "startend:quotation",
    ];

    static readonly string[] ConstrainedOptions = ["My answer is yes.", "My answer is no.", "My answer is maybe."];

    const RegexOptions IgnoreCase = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;

    /// <summary>True when <paramref name="response"/> follows <paramref name="instruction"/> (the reference's check_following).</summary>
    public static bool Check(IfEvalInstruction instruction, string response)
    {
        var a = instruction.Args;
        string S(string name) => a[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new OspreyException($"IFEval instruction {instruction.Id} needs the text argument '{name}' in its kwargs.");
        int N(string name) => a[name] is JsonValue v && (v.TryGetValue<int>(out var i) || (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && (i = (int)d) == i)) ? i
            : throw new OspreyException($"IFEval instruction {instruction.Id} needs the whole-number argument '{name}' in its kwargs.");
        List<string> L(string name) => a[name] is JsonArray arr ? arr.Select(n => n?.GetValue<string>() ?? "").ToList()
            : throw new OspreyException($"IFEval instruction {instruction.Id} needs the list argument '{name}' in its kwargs.");
        bool Compare(int actual, string relationName, int threshold) => S(relationName) switch
        {
            "less than" => actual < threshold,
            "at least" => actual >= threshold,
            var r => throw new OspreyException($"IFEval instruction {instruction.Id}: {relationName} '{r}' is neither 'less than' nor 'at least'."),
        };

        switch (instruction.Id)
        {
            case "keywords:existence":
                // The reference searches each keyword as a regular expression, ignoring case.
                return L("keywords").All(k => Regex.IsMatch(response, k, IgnoreCase));
            case "keywords:frequency":
                return Compare(Regex.Count(response, S("keyword").Trim(), IgnoreCase), "relation", N("frequency"));
            case "keywords:forbidden_words":
                return !L("forbidden_words").Any(w => Regex.IsMatch(response, @"\b" + w + @"\b", IgnoreCase));
            case "keywords:letter_frequency":
            {
                var letter = S("letter").Trim().ToLowerInvariant();
                if (letter.Length != 1) throw new OspreyException($"IFEval instruction {instruction.Id}: letter '{letter}' is not one character.");
                return Compare(response.ToLowerInvariant().Count(c => c == letter[0]), "let_relation", N("let_frequency"));
            }
            case "language:response_language":
                return LanguageGuess.Detect(response) is not { } found || found == S("language");
            case "length_constraints:number_sentences":
                return Compare(IfEvalText.CountSentences(response), "relation", N("num_sentences"));
            case "length_constraints:number_paragraphs":
            {
                var parts = Regex.Split(response, @"\s?\*\*\*\s?");
                var count = parts.Length;
                for (var i = 0; i < parts.Length; i++)
                {
                    if (parts[i].Trim().Length > 0) continue;
                    if (i == 0 || i == parts.Length - 1) count--;
                    else return false;
                }
                return count == N("num_paragraphs");
            }
            case "length_constraints:number_words":
                return Compare(IfEvalText.CountWords(response), "relation", N("num_words"));
            case "length_constraints:nth_paragraph_first_word":
            {
                var parts = response.Split("\n\n");
                var count = parts.Count(p => p.Trim().Length > 0);
                var nth = N("nth_paragraph");
                if (nth > count || nth < 1) return false;
                var paragraph = parts[nth - 1].Trim();
                if (paragraph.Length == 0) return false;
                var word = paragraph.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0].TrimStart('\'').TrimStart('"');
                var first = new string(word.TakeWhile(c => c is not ('.' or ',' or '?' or '!' or '\'' or '"')).ToArray()).ToLowerInvariant();
                return count == N("num_paragraphs") && first == S("first_word").ToLowerInvariant();
            }
            case "detectable_content:number_placeholders":
                return Regex.Count(response, @"\[.*?\]") >= N("num_placeholders");
            case "detectable_content:postscript":
            {
                var marker = S("postscript_marker").Trim();
                var pattern = marker switch
                {
                    "P.P.S" => @"\s*p\.\s?p\.\s?s.*$",
                    "P.S." => @"\s*p\.\s?s\..*$",
                    _ => @"\s*" + marker.ToLowerInvariant() + ".*$",
                };
                return Regex.IsMatch(response.ToLowerInvariant(), pattern, RegexOptions.Multiline);
            }
            case "detectable_format:number_bullet_lists":
                return Regex.Count(response, @"^\s*\*[^\*].*$", RegexOptions.Multiline) + Regex.Count(response, @"^\s*-.*$", RegexOptions.Multiline) == N("num_bullets");
            case "detectable_format:constrained_response":
            {
                var value = response.Trim();
                return ConstrainedOptions.Any(o => value.Contains(o, StringComparison.Ordinal));
            }
            case "detectable_format:number_highlighted_sections":
            {
                var single = Regex.Matches(response, @"\*[^\n\*]*\*").Count(m => m.Value.Trim('*').Trim().Length > 0);
                var twice = Regex.Matches(response, @"\*\*[^\n\*]*\*\*").Count(m => m.Value[2..^2].Trim().Length > 0);
                return single + twice >= N("num_highlights");
            }
            case "detectable_format:multiple_sections":
                return Regex.Split(response, @"\s?" + S("section_spliter").Trim() + @"\s?\d+\s?").Length - 1 >= N("num_sections");
            case "detectable_format:json_format":
            {
                var value = response.Trim();
                foreach (var prefix in new[] { "```json", "```Json", "```JSON", "```" })
                    if (value.StartsWith(prefix, StringComparison.Ordinal)) value = value[prefix.Length..];
                if (value.EndsWith("```", StringComparison.Ordinal)) value = value[..^3];
                try
                {
                    using var _ = JsonDocument.Parse(value.Trim());
                    return true;
                }
                catch (JsonException)
                {
                    return false;
                }
            }
            case "detectable_format:title":
                return Regex.Matches(response, @"<<[^\n]+>>").Any(m => m.Value.TrimStart('<').TrimEnd('>').Trim().Length > 0);
            case "combination:two_responses":
            {
                var parts = response.Split("******");
                var valid = new List<string>();
                for (var i = 0; i < parts.Length; i++)
                {
                    if (parts[i].Trim().Length > 0) valid.Add(parts[i]);
                    else if (i != 0 && i != parts.Length - 1) return false;
                }
                return valid.Count == 2 && valid[0].Trim() != valid[1].Trim();
            }
            case "combination:repeat_prompt":
                return response.Trim().ToLowerInvariant().StartsWith(S("prompt_to_repeat").Trim().ToLowerInvariant(), StringComparison.Ordinal);
            case "startend:end_checker":
                return response.Trim().Trim('"').ToLowerInvariant().EndsWith(S("end_phrase").Trim().ToLowerInvariant(), StringComparison.Ordinal);
            case "change_case:capital_word_frequency":
                return Compare(IfEvalText.CountCapitalWords(response), "capital_relation", N("capital_frequency"));
            case "change_case:english_capital":
                return IfEvalText.IsUpper(response) && LanguageGuess.Detect(response) is null or "en";
            case "change_case:english_lowercase":
                return IfEvalText.IsLower(response) && LanguageGuess.Detect(response) is null or "en";
            case "punctuation:no_comma":
                return !response.Contains(',', StringComparison.Ordinal);
            case "startend:quotation":
            {
                var value = response.Trim();
                return value.Length > 1 && value[0] == '"' && value[^1] == '"';
            }
            default:
                throw new OspreyException($"IFEval instruction '{instruction.Id}' is not one of the 25 the reference checks ({string.Join(", ", Ids)}).");
        }
    }

    /// <summary>
    /// The reference's loose variants of a response: itself, without its first line, without its last line, without
    /// both (each trimmed), and each of those four with every <c>*</c> removed.
    /// </summary>
    public static IReadOnlyList<string> LooseVariants(string response)
    {
        var lines = response.Split('\n');
        var first = string.Join("\n", lines.Skip(1)).Trim();
        var last = string.Join("\n", lines.Take(lines.Length - 1)).Trim();
        var both = string.Join("\n", lines.Skip(1).Take(Math.Max(0, lines.Length - 2))).Trim();
        string Bare(string s) => s.Replace("*", "", StringComparison.Ordinal);
        return [response, Bare(response), first, last, both, Bare(first), Bare(last), Bare(both)];
    }

    /// <summary>Strict: a non-blank response that follows the instruction as it is.</summary>
    public static bool Strict(IfEvalInstruction instruction, string response) =>
        response.Trim().Length > 0 && Check(instruction, response);

    /// <summary>Loose: any non-blank <see cref="LooseVariants"/> follows the instruction.</summary>
    public static bool Loose(IfEvalInstruction instruction, string response) =>
        LooseVariants(response).Any(r => r.Trim().Length > 0 && Check(instruction, r));
}
