using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Osprey.Evaluation;

/// <summary>
/// The scores of a run: per subset, per category and overall for each set and metric, means over items (so the
/// overall score weighs every item alike, as EvalScope's weighted average does); a metric a record gives weights
/// for (IFEval's instruction level) is pooled over those weights instead.
/// </summary>
public sealed record EvalReport(string Model, IReadOnlyList<EvalScoreRow> Rows)
{
    /// <summary>Aggregates per-item <paramref name="records"/> (as <see cref="EvalRunner"/> writes them).</summary>
    public static EvalReport FromRecords(string model, IReadOnlyList<JsonObject> records)
    {
        var rows = new List<EvalScoreRow>();
        foreach (var set in records.GroupBy(r => (string)r["dataset"]!).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var metrics = set.SelectMany(r => ((JsonObject)r["scores"]!).Select(p => p.Key)).Distinct().ToList();
            void Add(string level, IEnumerable<IGrouping<string, JsonObject>> groups)
            {
                foreach (var g in groups.OrderBy(g => g.Key, StringComparer.Ordinal))
                    foreach (var m in metrics)
                    {
                        // A record's weights (IFEval's instruction counts) pool a metric over its parts instead of its items.
                        var values = g.Where(r => r["scores"]![m] is not null)
                            .Select(r => (Value: Number(r["scores"]![m]!), Weight: r["weights"]?[m] is { } w ? Number(w) : 1.0)).ToList();
                        var total = values.Sum(v => v.Weight);
                        if (values.Count > 0) rows.Add(new EvalScoreRow(set.Key, level, g.Key, m, values.Count, total > 0 ? values.Sum(v => v.Value * v.Weight) / total : 0));
                    }
            }
            Add("subset", set.GroupBy(r => (string)r["subset"]!));
            var categories = set.GroupBy(r => (string)r["category"]!).ToList();
            if (categories.Select(c => c.Key).Order().SequenceEqual(set.Select(r => (string)r["subset"]!).Distinct().Order()) is false) Add("category", categories);
            Add("overall", set.GroupBy(_ => "OVERALL"));
        }
        return new EvalReport(model, rows);
    }

    static double Number(JsonNode node) => double.Parse(node.ToJsonString(), CultureInfo.InvariantCulture);

    /// <summary>The overall score of <paramref name="dataset"/> for <paramref name="metric"/> (NaN when absent).</summary>
    public double Overall(string dataset, string metric) =>
        Rows.FirstOrDefault(r => r.Dataset == dataset && r.Level == "overall" && r.Metric == metric)?.Score ?? double.NaN;

    /// <summary>The report as JSON (model and rows).</summary>
    public JsonObject ToJson() => new()
    {
        ["model"] = Model,
        ["rows"] = new JsonArray(Rows.Select(r => (JsonNode)new JsonObject
        {
            ["dataset"] = r.Dataset,
            ["level"] = r.Level,
            ["group"] = r.Group,
            ["metric"] = r.Metric,
            ["num"] = r.Num,
            ["score"] = Math.Round(r.Score, 4),
        }).ToArray()),
    };

    /// <summary>The report as a markdown table (also what the command prints).</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| Model | Dataset | Metric | Subset | Num | Score |\n|---|---|---|---|---:|---:|\n");
        foreach (var r in Rows)
        {
            var group = r.Level switch { "overall" => "OVERALL", "category" => $"[{r.Group}]", _ => r.Group };
            sb.Append(CultureInfo.InvariantCulture, $"| {Model} | {r.Dataset} | {r.Metric} | {group} | {r.Num} | {r.Score:0.0000} |\n");
        }
        return sb.ToString();
    }
}
