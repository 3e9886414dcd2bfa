using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Evaluation;

/// <summary>
/// IFEval by name, as EvalScope defines it (ModelScope <c>opencompass/ifeval</c>, Hugging Face <c>google/IFEval</c>;
/// one split, subset <c>default</c>, zero-shot): rows of key, prompt, instruction_id_list and kwargs (one argument
/// object per instruction), read from the folder's jsonl files (the reference's input_data.jsonl layout) or, when
/// there are none, its Parquet files. The prompt is the row's prompt alone, sent through the chat template. Scored
/// with <see cref="IfEvalCheckers"/>: prompt_level_strict (every instruction followed), inst_level_strict (the share
/// of instructions followed, pooled over all instructions of the run as the paper's instruction-level accuracy),
/// and the same two loose (an instruction counts as followed when any of the reference's response variants follows it).
/// </summary>
public static class IfEval
{
    /// <summary>The metric names, EvalScope's.</summary>
    public static IReadOnlyList<string> Metrics { get; } = ["prompt_level_strict", "inst_level_strict", "prompt_level_loose", "inst_level_loose"];

    /// <summary>The one subset of <paramref name="dir"/>.</summary>
    public static EvalSubset Read(string dataset, string dir)
    {
        var jsonl = Directory.EnumerateFiles(dir, "*.jsonl", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        var parquet = Directory.EnumerateFiles(dir, "*.parquet", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        if (jsonl.Count == 0 && parquet.Count == 0)
            throw new OspreyException($"{dir} has no .jsonl or .parquet file; ifeval's folder holds rows of key, prompt, instruction_id_list and kwargs (e.g. input_data.jsonl).");
        var items = new List<EvalItem>();
        if (jsonl.Count > 0)
        {
            foreach (var path in jsonl)
            {
                var n = 0;
                foreach (var text in File.ReadLines(path))
                {
                    n++;
                    if (string.IsNullOrWhiteSpace(text)) continue;
                    JsonObject row;
                    try
                    {
                        row = JsonNode.Parse(text) as JsonObject ?? throw new OspreyException($"{path}:{n}: the line is not a JSON object; each line holds one IFEval row.");
                    }
                    catch (JsonException e)
                    {
                        throw new OspreyException($"{path}:{n}: the line is not valid JSON ({e.Message}); fix or remove it.");
                    }
                    items.Add(Item(dataset, items.Count, row, $"{path}:{n}"));
                }
            }
        }
        else
        {
            foreach (var path in parquet)
                foreach (var (row, i) in HubBenchmarks.Read(path).Select((r, i) => (r, i)))
                    items.Add(Item(dataset, items.Count, new JsonObject(row.Select(p => KeyValuePair.Create(p.Key, ToJson(p.Value)))), $"{path}: row {i + 1}"));
        }
        return new EvalSubset(dataset, "default", EvalKind.InstructionFollowing, items, [], "default");
    }

    static EvalItem Item(string dataset, int index, JsonObject row, string where)
    {
        var prompt = row["prompt"] is JsonValue p && p.TryGetValue<string>(out var s) ? s : throw new OspreyException($"{where}: the row has no text field 'prompt'.");
        var ids = row["instruction_id_list"] is JsonArray list ? list.Select(x => x?.GetValue<string>() ?? "").ToList()
            : throw new OspreyException($"{where}: the row has no list field 'instruction_id_list'.");
        var kwargs = row["kwargs"] as JsonArray ?? throw new OspreyException($"{where}: the row has no list field 'kwargs' (one argument object per instruction).");
        if (kwargs.Count != ids.Count) throw new OspreyException($"{where}: kwargs has {kwargs.Count} entries for {ids.Count} instructions; give one object per instruction.");
        var instructions = new List<IfEvalInstruction>();
        for (var i = 0; i < ids.Count; i++)
        {
            var args = new JsonObject();
            if (kwargs[i] is JsonObject given)
                foreach (var (k, v) in given)
                    if (!IsEmpty(v)) args[k] = v!.DeepClone();
            var instruction = new IfEvalInstruction(ids[i], args);
            try
            {
                IfEvalCheckers.Check(instruction, "x");   // an unknown id or a missing argument fails here, before any generation
            }
            catch (OspreyException e)
            {
                throw new OspreyException($"{where}: {e.Message}");
            }
            catch (ArgumentException e)
            {
                // The reference treats keywords and markers as regular expressions; one that does not parse is bad data.
                throw new OspreyException($"{where}: instruction {ids[i]} has an argument that is not a valid regular expression ({e.Message}); fix the kwargs.");
            }
            instructions.Add(instruction);
        }
        return new EvalItem(dataset, "default", index, EvalKind.InstructionFollowing, prompt, [], string.Join(", ", ids), Instructions: instructions);
    }

    // The reference harnesses keep only truthy kwargs (lm-evaluation-harness: {k: v ... if v}).
    static bool IsEmpty(JsonNode? v) => v switch
    {
        null => true,
        JsonValue x when x.TryGetValue<string>(out var s) => s.Length == 0,
        JsonValue x when x.TryGetValue<double>(out var d) => d == 0,
        JsonArray a => a.Count == 0,
        _ => false,
    };

    static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        IDictionary d => new JsonObject(d.Keys.Cast<object>().Select(k => KeyValuePair.Create(Convert.ToString(k, CultureInfo.InvariantCulture)!, ToJson(d[k])))),
        IEnumerable e => new JsonArray(e.Cast<object?>().Select(ToJson).ToArray()),
        IConvertible c => JsonValue.Create(c.ToDouble(CultureInfo.InvariantCulture)),
        _ => JsonValue.Create(value.ToString()),
    };

    /// <summary>The prompt: the row's text as the user's message (EvalScope's empty template).</summary>
    public static EvalPrompt Prompt(EvalItem item) => new(null, item.Question);

    /// <summary>
    /// The scores of <paramref name="reply"/> (1/0 per prompt, the followed share per instruction level), the
    /// weights that pool the instruction levels over instructions, and each instruction's strict and loose result.
    /// </summary>
    public static (JsonObject Scores, JsonObject Weights, JsonArray Detail) Score(EvalItem item, string reply)
    {
        var instructions = item.Instructions ?? [];
        var strict = instructions.Select(i => IfEvalCheckers.Strict(i, reply)).ToList();
        var loose = instructions.Select(i => IfEvalCheckers.Loose(i, reply)).ToList();
        double Share(List<bool> r) => r.Count == 0 ? 1 : r.Count(x => x) / (double)r.Count;
        var scores = new JsonObject
        {
            ["prompt_level_strict"] = strict.All(x => x) ? 1.0 : 0.0,
            ["inst_level_strict"] = Share(strict),
            ["prompt_level_loose"] = loose.All(x => x) ? 1.0 : 0.0,
            ["inst_level_loose"] = Share(loose),
        };
        var weights = new JsonObject { ["inst_level_strict"] = instructions.Count, ["inst_level_loose"] = instructions.Count };
        var detail = new JsonArray(instructions.Select((ins, i) => (JsonNode)new JsonObject { ["id"] = ins.Id, ["strict"] = strict[i], ["loose"] = loose[i] }).ToArray());
        return (scores, weights, detail);
    }
}
