using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Io;
using Osprey.Reporting;

namespace Osprey.Evaluation;

/// <summary>
/// <c>osprey eval</c> as one library call: reads the sets, asks the model, scores every item, and writes into
/// <c>--eval_output_dir</c> predictions.jsonl (every item's prompt, prediction, extracted answer, gold and scores,
/// appended as items finish), report.json, report.md and report.png. A run whose folder already holds
/// predictions.jsonl answers only the items not in it (an interrupted run resumes).
/// </summary>
public static class EvalRunner
{
    /// <summary>The per-item records' file name.</summary>
    public const string PredictionsFile = "predictions.jsonl";

    /// <summary>
    /// Runs <paramref name="options"/>; <paramref name="loadModel"/> makes the model when items remain to answer.
    /// Progress (items/s, ETA) goes to <paramref name="stderr"/>; the table to <paramref name="stdout"/>.
    /// </summary>
    public static async Task<EvalReport> RunAsync(EvalOptions options, Func<IEvalModel> loadModel, TextWriter stdout, TextWriter stderr, CancellationToken cancel = default)
    {
        options.Validate();
        var subsets = EvalSets.Load(options, stderr);
        Directory.CreateDirectory(options.OutputDir);
        var path = Path.Combine(options.OutputDir, PredictionsFile);
        var done = ReadRecords(path, stderr);
        var doneKeys = done.Select(r => (string)r["key"]!).ToHashSet(StringComparer.Ordinal);
        var pending = subsets.SelectMany(s => s.Items.Where(i => !doneKeys.Contains(i.Key)).Select(i => (Subset: s, Item: i))).ToList();
        var total = subsets.Sum(s => s.Items.Count);
        if (done.Count > 0) stderr.WriteLine($"osprey: resuming from {path}: {total - pending.Count} of {total} items already answered.");

        var method = options.ResolvedMcMethod;
        var name = options.Model.Model ?? "model";
        if (pending.Count > 0)
        {
            using var model = loadModel();
            name = model.Name;
            if (method == McMethod.LogLikelihood && !model.CanScore)
                throw new OspreyException("--eval_mc_method loglikelihood needs a local model; use --eval_mc_method generation.");
            await using var output = new StreamWriter(path, append: true, new UTF8Encoding(false));
            var progress = new ProgressReporter(stderr, ProgressReporter.IsInteractive(stderr), "Eval", pending.Count);
            var clock = Stopwatch.StartNew();
            var answered = 0;
            void Record(JsonObject record)
            {
                output.WriteLine(JsonText.Of(record));
                output.Flush();
                done.Add(record);
                answered++;
                var rate = answered / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                progress.Update(answered, new Dictionary<string, string> { ["_rate"] = rate.ToString("0.00", CultureInfo.InvariantCulture) + " items/s" });
            }
            foreach (var (subset, item) in pending.Where(p => p.Item.Kind == EvalKind.MultipleChoice && method == McMethod.LogLikelihood))
            {
                cancel.ThrowIfCancellationRequested();
                var (context, continuations) = EvalPrompts.LogLikelihood(item, Shots(options, subset, item));
                var ll = model.LogLikelihoods(context, continuations);
                Record(ScoreLogLikelihood(subset, item, context, continuations, ll));
            }
            var generative = pending.Where(p => !(p.Item.Kind == EvalKind.MultipleChoice && method == McMethod.LogLikelihood)).ToList();
            // Chunks of four times the model's concurrency: the engine (or the URL client) keeps that many in flight
            // and starts the next prompt as soon as one ends, so a chunk's slowest reply holds back a quarter of the
            // slots, not all of them; answers are still recorded (and resumable) chunk by chunk.
            foreach (var chunk in generative.Chunk(4 * Math.Max(1, model.Concurrency)))
            {
                cancel.ThrowIfCancellationRequested();
                var prompts = chunk.Select(p => Prompt(options, p.Subset, p.Item)).ToList();
                var replies = await model.GenerateAsync(prompts, cancel);
                for (var i = 0; i < chunk.Length; i++) Record(ScoreReply(chunk[i].Subset, chunk[i].Item, prompts[i], replies[i]));
            }
            progress.Finish();
        }

        // Only this run's items count (a folder may hold records of other sets from earlier runs).
        var wanted = subsets.SelectMany(s => s.Items).Select(i => i.Key).ToHashSet(StringComparer.Ordinal);
        var report = EvalReport.FromRecords(name, done.Where(r => wanted.Contains((string)r["key"]!)).ToList());
        WriteAtomically(Path.Combine(options.OutputDir, "report.json"), JsonText.Of(report.ToJson()) + "\n");
        var markdown = report.ToMarkdown();
        WriteAtomically(Path.Combine(options.OutputDir, "report.md"), markdown);
        EvalChart.Write(Path.Combine(options.OutputDir, "report.png"), report);
        stdout.Write(markdown);
        return report;
    }

    static IReadOnlyList<EvalItem> Shots(EvalOptions options, EvalSubset subset, EvalItem item) =>
        subset.Dev.Take(EvalSets.FewShotFor(options, subset.Dataset)).ToList();

    static EvalPrompt Prompt(EvalOptions options, EvalSubset subset, EvalItem item) => item.Kind switch
    {
        EvalKind.MultipleChoice => EvalPrompts.McGeneration(item, Shots(options, subset, item)),
        EvalKind.Math => EvalPrompts.Math(item, Shots(options, subset, item)),
        EvalKind.ShortAnswer => Bbh.Prompt(item, Shots(options, subset, item)),
        EvalKind.InstructionFollowing => IfEval.Prompt(item),
        _ => EvalPrompts.OpenQa(item),
    };

    static JsonObject Base(EvalSubset subset, EvalItem item, string method, string prompt, string prediction, string extracted) => new()
    {
        ["key"] = item.Key,
        ["dataset"] = item.Dataset,
        ["subset"] = item.Subset,
        ["category"] = subset.Category,
        ["index"] = item.Index,
        ["method"] = method,
        ["prompt"] = prompt,
        ["prediction"] = prediction,
        ["extracted"] = extracted,
        ["gold"] = item.Gold,
    };

    /// <summary>
    /// lm-evaluation-harness's multiple-choice metrics: acc (the option of highest log-likelihood is the gold one)
    /// and acc_norm (the same after dividing each log-likelihood by its continuation's length in characters).
    /// </summary>
    public static (int Acc, int AccNorm, int Choice) ScoreOptions(IReadOnlyList<double> logLikelihoods, IReadOnlyList<string> continuations, int gold)
    {
        var choice = ArgMax(logLikelihoods);
        var normalised = ArgMax(logLikelihoods.Select((l, i) => l / Math.Max(1, continuations[i].Length)).ToList());
        return (choice == gold ? 1 : 0, normalised == gold ? 1 : 0, choice);
    }

    static int ArgMax(IReadOnlyList<double> values)
    {
        var best = 0;
        for (var i = 1; i < values.Count; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    static JsonObject ScoreLogLikelihood(EvalSubset subset, EvalItem item, string context, IReadOnlyList<string> continuations, double[] ll)
    {
        var (acc, accNorm, choice) = ScoreOptions(ll, continuations, item.Gold[0] - 'A');
        var record = Base(subset, item, "loglikelihood", context, item.Letters[choice], item.Letters[choice]);
        record["loglikelihoods"] = new JsonArray(ll.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
        record["scores"] = new JsonObject { ["acc"] = (double)acc, ["acc_norm"] = (double)accNorm };
        return record;
    }

    static JsonObject ScoreReply(EvalSubset subset, EvalItem item, EvalPrompt prompt, string reply)
    {
        switch (item.Kind)
        {
            case EvalKind.MultipleChoice:
            {
                var letter = AnswerExtraction.Letter(reply, item.Letters);
                var r = Base(subset, item, "generation", prompt.Text, reply, letter);
                r["scores"] = new JsonObject { ["acc"] = letter == item.Gold ? 1.0 : 0.0 };
                return r;
            }
            case EvalKind.Math:
            {
                var number = AnswerExtraction.FinalNumber(reply);
                var r = Base(subset, item, "generation", prompt.Text, reply, number);
                r["scores"] = new JsonObject { ["acc"] = number == item.Gold ? 1.0 : 0.0 };
                return r;
            }
            case EvalKind.ShortAnswer:
            {
                var answer = Bbh.Extract(reply, item.Subset);
                var r = Base(subset, item, "generation", prompt.Text, reply, answer);
                r["scores"] = new JsonObject { ["acc"] = answer == item.Gold ? 1.0 : 0.0 };
                return r;
            }
            case EvalKind.InstructionFollowing:
            {
                var (scores, weights, detail) = IfEval.Score(item, reply);
                var r = Base(subset, item, "generation", prompt.Text, reply, reply);
                r["instructions"] = detail;
                r["scores"] = scores;
                r["weights"] = weights;
                return r;
            }
            default:
            {
                var r = Base(subset, item, "generation", prompt.Text, reply, reply);
                var scores = new JsonObject();
                foreach (var (k, v) in TextMetrics.Score(reply, item.Gold)) scores[k] = v;
                r["scores"] = scores;
                return r;
            }
        }
    }

    /// <summary>
    /// The records of an earlier run. A last line cut off by an interruption is dropped and the file rewritten
    /// without it (temp file + rename), so appending continues on a clean line.
    /// </summary>
    static List<JsonObject> ReadRecords(string path, TextWriter stderr)
    {
        var records = new List<JsonObject>();
        if (!File.Exists(path)) return records;
        var lines = File.ReadAllLines(path);
        var broken = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            try
            {
                if (JsonNode.Parse(lines[i]) is JsonObject o && o["key"] is not null && o["scores"] is JsonObject) { records.Add(o); continue; }
            }
            catch (JsonException) when (i == lines.Length - 1)
            {
            }
            catch (JsonException e)
            {
                throw new OspreyException($"{path}:{i + 1}: the line is not a record ({e.Message}); delete the line or the file to answer its items again.");
            }
            broken++;
        }
        if (broken > 0)
        {
            stderr.WriteLine($"osprey: {path}: dropped {broken} incomplete record(s) left by an interrupted run.");
            WriteAtomically(path, string.Concat(records.Select(r => JsonText.Of(r) + "\n")));
        }
        return records;
    }

    /// <summary>Writes <paramref name="text"/> to a temporary file beside <paramref name="path"/>, then renames it over.</summary>
    static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }
}
