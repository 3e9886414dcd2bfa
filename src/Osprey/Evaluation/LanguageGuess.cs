namespace Osprey.Evaluation;

/// <summary>
/// A small language identifier for IFEval's response_language and english_* checks, standing in for langdetect
/// (the reference's n-gram model, which is not available in .NET). It covers the languages IFEval asks for (the
/// reference's LANGUAGE_CODES) and Chinese: the writing system decides most of them (Hangul → ko, kana → ja, Han
/// alone → zh-cn, Thai, Hebrew, Bengali, Gurmukhi → pa, Gujarati, Tamil, Telugu, Kannada, Malayalam); inside a
/// script shared by several languages, letters only one of them uses and counts of very common words decide
/// (Arabic script: ar/fa/ur; Devanagari: hi/mr/ne; Cyrillic: ru/uk/bg; Latin: en, es, pt, fr, de, it, pl, vi, sw,
/// fi). Mixed text goes to the script with the most letters. Where it can differ from langdetect: short or
/// mixed-language replies, Latin-script languages outside this list (reported as the closest listed one), and
/// texts without any common word (reported as English). Returns null for text without letters (langdetect raises
/// there, and the reference counts the instruction as followed).
/// </summary>
public static class LanguageGuess
{
    static readonly (string Code, char From, char To)[] Scripts =
    [
        ("ko", '\uAC00', '\uD7AF'), ("ko", '\u1100', '\u11FF'), ("ko", '\u3130', '\u318F'),
        ("ja", '\u3040', '\u30FF'), ("zh-cn", '\u4E00', '\u9FFF'), ("th", '\u0E00', '\u0E7F'),
        ("he", '\u0590', '\u05FF'), ("bn", '\u0980', '\u09FF'), ("pa", '\u0A00', '\u0A7F'),
        ("gu", '\u0A80', '\u0AFF'), ("ta", '\u0B80', '\u0BFF'), ("te", '\u0C00', '\u0C7F'),
        ("kn", '\u0C80', '\u0CFF'), ("ml", '\u0D00', '\u0D7F'), ("arabic", '\u0600', '\u06FF'),
        ("devanagari", '\u0900', '\u097F'), ("cyrillic", '\u0400', '\u04FF'),
    ];

    static readonly Dictionary<string, string[]> CommonWords = new()
    {
        ["en"] = ["the", "and", "of", "to", "is", "in", "that", "it", "you", "for", "with", "are", "this", "be", "on", "was", "have", "not", "as", "or"],
        ["es"] = ["el", "la", "de", "que", "y", "los", "las", "en", "es", "un", "una", "por", "para", "con", "del", "se", "no", "su", "lo", "más"],
        ["pt"] = ["o", "a", "de", "que", "e", "os", "as", "em", "um", "uma", "para", "com", "não", "do", "da", "dos", "das", "no", "na", "é"],
        ["fr"] = ["le", "la", "les", "de", "des", "et", "est", "un", "une", "du", "que", "en", "pour", "dans", "pas", "qui", "sur", "au", "avec", "ce"],
        ["de"] = ["der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "von", "sie", "es", "ich", "auf", "für", "im", "dem", "sich"],
        ["it"] = ["il", "di", "che", "e", "la", "per", "non", "un", "una", "è", "del", "della", "sono", "le", "con", "gli", "si", "nel", "lo", "da"],
        ["pl"] = ["i", "w", "nie", "na", "się", "z", "jest", "to", "że", "do", "o", "jak", "ale", "po", "co", "tak", "za", "od", "są", "czy"],
        ["vi"] = ["và", "của", "là", "có", "không", "được", "các", "những", "một", "người", "trong", "cho", "với", "này", "đã", "để", "khi", "thì", "cũng", "như"],
        ["sw"] = ["na", "ya", "wa", "kwa", "ni", "za", "katika", "la", "kuwa", "hii", "cha", "au", "lakini", "pia", "sana", "kama", "wewe", "yake", "hiyo", "ili"],
        ["fi"] = ["ja", "on", "ei", "se", "että", "oli", "ovat", "mutta", "kun", "tai", "hän", "ole", "myös", "sen", "kuin", "niin", "voi", "tämä", "jos", "mitä"],
        ["hi"] = ["है", "और", "के", "की", "में", "से", "को", "हैं", "यह", "का", "कि", "पर", "भी", "नहीं", "था"],
        ["mr"] = ["आहे", "आणि", "या", "च्या", "ला", "हे", "आहेत", "की", "तर", "नाही", "होते", "त्या", "मध्ये", "केले", "पण"],
        ["ar"] = ["في", "من", "على", "أن", "إلى", "هذا", "التي", "الذي", "عن", "هذه", "كان", "لا", "ما", "مع", "هو"],
        ["fa"] = ["است", "و", "در", "به", "از", "که", "این", "را", "با", "برای", "یک", "می", "شود", "آن", "هم"],
        ["ur"] = ["ہے", "کے", "میں", "اور", "کی", "سے", "کو", "کہ", "یہ", "ہیں", "نہیں", "پر", "بھی", "تھا", "ایک"],
        ["ru"] = ["и", "в", "не", "на", "что", "это", "как", "он", "с", "я", "по", "но", "они", "так", "для"],
        ["uk"] = ["і", "в", "не", "на", "що", "це", "як", "та", "з", "до", "у", "для", "але", "він", "є"],
        ["bg"] = ["и", "в", "не", "на", "да", "се", "това", "е", "за", "от", "че", "са", "като", "по", "ще"],
        ["ne"] = ["छ", "र", "को", "मा", "हो", "छन्", "यो", "पनि", "गर्न", "भएको", "लागि", "थियो", "गरेको", "नेपाल", "हुन्छ"],
    };

    // Letters that one language of a shared script has and the others lack; each counts as much as a common word.
    static readonly (string Code, string Letters)[] Marks =
    [
        ("ur", "ٹڈڑںےۓھ"), ("fa", "پچژگیک"), ("ar", "ةىإأيك"),
        ("uk", "іїєґ"), ("ru", "ыэё"), ("bg", "ъщ"),
        ("vi", "ơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"), ("pl", "ąęłńśźżć"), ("de", "äöüß"),
        ("es", "ñ¿¡"), ("pt", "ãõç"), ("fr", "çèêëîïôœù"), ("it", "ìò"), ("fi", "äö"),
        ("mr", "ळ"),
    ];

    /// <summary>The language code langdetect would most likely give <paramref name="text"/>; null when it has no letters.</summary>
    public static string? Detect(string text)
    {
        var counts = new Dictionary<string, int>();
        var latin = 0;
        foreach (var c in text)
        {
            if (!char.IsLetter(c)) continue;
            if (c < '\u0250' || (c >= '\u1E00' && c <= '\u1EFF')) { latin++; continue; }
            foreach (var (code, from, to) in Scripts)
                if (c >= from && c <= to) { counts[code] = counts.GetValueOrDefault(code) + 1; break; }
        }
        if (latin == 0 && counts.Count == 0) return null;
        // Japanese text mixes kana and Han; any real share of kana makes it Japanese, as langdetect's profiles do.
        if (counts.GetValueOrDefault("ja") * 10 >= counts.GetValueOrDefault("zh-cn") && counts.ContainsKey("ja")) counts["ja"] += counts.GetValueOrDefault("zh-cn");
        var (script, n) = counts.Count == 0 ? ("latin", 0) : counts.MaxBy(p => p.Value) is var top ? (top.Key, top.Value) : default;
        if (latin > n) script = "latin";
        return script switch
        {
            "arabic" => Vote(text, ["ar", "fa", "ur"], "ar"),
            "devanagari" => Vote(text, ["hi", "mr", "ne"], "hi"),
            "cyrillic" => Vote(text, ["ru", "uk", "bg"], "ru"),
            "latin" => Vote(text, ["en", "es", "pt", "fr", "de", "it", "pl", "vi", "sw", "fi"], "en"),
            _ => script,
        };
    }

    static string Vote(string text, string[] languages, string fallback)
    {
        var lower = text.ToLowerInvariant();
        var words = lower.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Select(w => w.Trim(".,;:!?\"'()[]{}«»“”‘’-—…।".ToCharArray())).Where(w => w.Length > 0).ToList();
        var best = fallback;
        var bestScore = 0.0;
        foreach (var language in languages)
        {
            var score = 0.0;
            if (CommonWords.TryGetValue(language, out var common))
            {
                var set = common.ToHashSet(StringComparer.Ordinal);
                score += words.Count(set.Contains);
            }
            foreach (var (code, letters) in Marks)
                if (code == language) score += lower.Count(letters.Contains) * 0.5;
            if (score > bestScore) { best = language; bestScore = score; }
        }
        return best;
    }
}
