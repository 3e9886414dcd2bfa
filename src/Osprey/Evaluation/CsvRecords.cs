using System.Text;

namespace Osprey.Evaluation;

/// <summary>
/// RFC 4180 CSV: fields separated by commas, quoted with double quotes when they hold commas, quotes (doubled) or
/// line breaks. Returns the header's names with each record, and the line each record starts on for messages.
/// </summary>
public static class CsvRecords
{
    /// <summary>The records of <paramref name="path"/> as name → value, with their starting line numbers.</summary>
    /// <exception cref="OspreyException">An unterminated quote, or a record whose field count differs from the header's.</exception>
    public static IReadOnlyList<(int Line, IReadOnlyDictionary<string, string> Fields)> Read(string path)
    {
        var text = File.ReadAllText(path, Encoding.UTF8);
        var rows = new List<(int Line, List<string> Fields)>();
        var field = new StringBuilder();
        var fields = new List<string>();
        int line = 1, start = 1, i = 0;
        bool quoted = false, any = false;
        while (i < text.Length)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                if (c == '"') { quoted = false; i++; continue; }
                if (c == '\n') line++;
                field.Append(c);
                i++;
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0: quoted = true; any = true; break;
                case ',': fields.Add(field.ToString()); field.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    if (any || field.Length > 0 || fields.Count > 0) { fields.Add(field.ToString()); rows.Add((start, fields)); }
                    fields = []; field.Clear(); any = false;
                    line++;
                    start = line;
                    break;
                default: field.Append(c); any = true; break;
            }
            i++;
        }
        if (quoted) throw new OspreyException($"{path}:{start}: a quoted field is never closed; end it with a double quote.");
        if (any || field.Length > 0 || fields.Count > 0) { fields.Add(field.ToString()); rows.Add((start, fields)); }
        if (rows.Count == 0) return [];
        var header = rows[0].Fields.Select(h => h.Trim().TrimStart('\uFEFF')).ToList();
        var result = new List<(int, IReadOnlyDictionary<string, string>)>();
        foreach (var (at, values) in rows.Skip(1))
        {
            if (values.Count != header.Count)
                throw new OspreyException($"{path}:{at}: the record has {values.Count} fields but the header has {header.Count} ({string.Join(",", header)}); quote fields that hold commas.");
            result.Add((at, header.Zip(values).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal)));
        }
        return result;
    }
}
