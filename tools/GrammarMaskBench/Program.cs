using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Osprey.Inference.Constraints;
using Osprey.Tokenization;

// Times the token mask of each decode step while a long JSON document, tokenized by a real tokenizer, is fed
// through a GrammarMatcher: two documents (one pretty-printed, one compact) warm the caches, as the first requests
// of a server do; two others, different, are measured after warm-up. `walks` counts the trie walks (cache misses). Each token is checked against its mask, so a mask that refuses the
// document's own next token fails the run. Usage: GrammarMaskBench TOKENIZER_FOLDER [TOKENS_PER_DOCUMENT] [replay FILE | stream FILE | concurrent ROWS STEPS ROUNDS]
if (args.Length < 1) { Console.Error.WriteLine("usage: GrammarMaskBench TOKENIZER_FOLDER [TOKENS_PER_DOCUMENT]"); return 2; }
var tokenizer = Tokenizer.Load(args[0]);
var target = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2000;
var build = Stopwatch.StartNew();
var vocabulary = TokenVocabulary.For(tokenizer);
Console.WriteLine($"tokenizer {args[0]}: {tokenizer.VocabSize} tokens; per-tokenizer tables built in {build.Elapsed.TotalSeconds:F2} s");
if (Environment.GetEnvironmentVariable("BENCH_PREWARM") == "1")
{
    // As the serving engine does when it starts on a GPU (in the background there).
    var (walks0, prewarm) = (vocabulary.Walks, Stopwatch.StartNew());
    var keys = vocabulary.PrewarmStrings();
    Console.WriteLine($"prewarmed {keys} masks ({vocabulary.Walks - walks0} walks) in {prewarm.Elapsed.TotalSeconds:F2} s");
}

const string Schema = """
{"type":"object","properties":{
  "id":{"type":"integer"},"title":{"type":"string","maxLength":60},"active":{"type":"boolean"},
  "owner":{"type":"object","properties":{"name":{"type":"string","maxLength":40},"email":{"type":"string"},
    "role":{"enum":["admin","user","guest"]}},"required":["name","role"],"additionalProperties":false},
  "items":{"type":"array","maxItems":64,"items":{"type":"object","properties":{
    "sku":{"type":"string","maxLength":16},"qty":{"type":"integer"},"price":{"type":"number"},
    "tags":{"type":"array","items":{"type":"string","maxLength":20},"maxItems":6},
    "attributes":{"type":"object","additionalProperties":{"type":["string","number","null"]}}},
    "required":["sku","qty","price"],"additionalProperties":false}},
  "notes":{"type":["string","null"]}},
 "required":["id","title","owner","items"],"additionalProperties":false}
""";
var cases = new (string Name, JsonSchemaGrammar Grammar, Func<Random, int, string> Document)[]
{
    ("json_object", JsonSchemaGrammar.AnyObject, FreeDocument),
    ("json_schema (nested)", JsonSchemaGrammar.FromSchema(Schema), SchemaDocument),
};
if (args.Length > 3 && args[2] == "stream")
{
    // The serving engine's text hand-out (StopMatcher, no stop strings) over the rows of `osprey benchmark` rounds
    // (OSPREY_BENCH_TOKENS=FILE), against random token ids of the same lengths: microseconds and bytes allocated per
    // token, best of 5 passes after 3 warm-up ones (run with DOTNET_TieredCompilation=0 for steady-state code).
    Func<IReadOnlyList<int>, string> decode = ids => tokenizer.Decode(ids, skipSpecialTokens: true);
    Console.WriteLine($"{"rows",-22} {"tokens",7} {"chars",7} {"us/token",9} {"B/token",8}");
    foreach (var line in File.ReadLines(args[3]))
    {
        using var doc = JsonDocument.Parse(line);
        var format = doc.RootElement.GetProperty("format").GetString()!;
        var rowsIds = doc.RootElement.GetProperty("rows").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        var rng = new Random(1);
        var random = rowsIds.Select(r => r.Select(_ => rng.Next(0, tokenizer.VocabSize)).ToArray()).ToArray();
        foreach (var (name, set) in new[] { (format == "json_object" ? format : Path.GetFileName(format), rowsIds), ("random ids", random) })
        {
            var (best, bytes, chars) = (double.MaxValue, 0L, 0L);
            var tokens = set.Sum(r => r.Length);
            for (var pass = 0; pass < 8; pass++)
            {
                var allocated = GC.GetAllocatedBytesForCurrentThread();
                var clock = Stopwatch.StartNew();
                chars = 0;
                foreach (var r in set)
                {
                    var matcher = new Osprey.Inference.StopMatcher(decode, []);
                    foreach (var id in r) chars += matcher.Add(id).Length;
                    chars += matcher.Finish().Length;
                }
                if (pass < 3 || clock.Elapsed.TotalMicroseconds / tokens >= best) continue;
                (best, bytes) = (clock.Elapsed.TotalMicroseconds / tokens, (GC.GetAllocatedBytesForCurrentThread() - allocated) / tokens);
            }
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{name,-22} {tokens,7} {chars,7} {best,9:F2} {bytes,8}"));
        }
    }
    return 0;
}
if (args.Length > 3 && args[2] == "replay")
{
    // Replays the token ids of `osprey benchmark` rounds (OSPREY_BENCH_TOKENS=FILE on the GPU machine): each line's rows
    // decode together as in the engine, every step each running row's mask computed (in parallel, as Constrain does),
    // then each row steps past its own next token (checked against its mask). Each line runs twice: the first warms the
    // caches as the engine's warm-up round does; the second is measured. BENCH_SCHEMA=FILE gives the schema of lines
    // whose format is not json_object.
    Console.WriteLine($"{"format",-14} {"pass",-9} {"rows",5} {"steps",6} {"mean_ms",9} {"p50_ms",8} {"p99_ms",8} {"max_ms",8} {"walks",6} {"checks",8} {"alloc_MB",9}");
    foreach (var line in File.ReadLines(args[3]))
    {
        using var doc = JsonDocument.Parse(line);
        var format = doc.RootElement.GetProperty("format").GetString()!;
        var rowsIds = doc.RootElement.GetProperty("rows").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        var grammar = format == "json_object" ? JsonSchemaGrammar.AnyObject
            : JsonSchemaGrammar.FromSchema(File.ReadAllText(Environment.GetEnvironmentVariable("BENCH_SCHEMA") ?? format));
        foreach (var pass in new[] { "warm-up", "measured" })
        {
            var matchers = rowsIds.Select(_ => new GrammarMatcher(grammar, vocabulary)).ToArray();
            var (walks, checks, allocated) = (vocabulary.Walks, vocabulary.Checks, GC.GetTotalAllocatedBytes(precise: true));
            var steps = rowsIds.Max(r => r.Length);
            var times = new double[steps];
            var clock = new Stopwatch();
            for (var step = 0; step < steps; step++)
            {
                var running = Enumerable.Range(0, rowsIds.Length).Where(j => step < rowsIds[j].Length).ToArray();
                clock.Restart();
                Parallel.For(0, running.Length, i => matchers[running[i]].Allowed());
                times[step] = clock.Elapsed.TotalMilliseconds;
                if (Environment.GetEnvironmentVariable("BENCH_VERBOSE") is not null)
                    Console.Error.WriteLine($"step {step}: {times[step]:F2} ms, walks {vocabulary.Walks - walks}, checks {vocabulary.Checks - checks}");
                foreach (var j in running)
                {
                    var id = rowsIds[j][step];
                    if (!matchers[j].Allowed().Allows(id) && !(matchers[j].CanEnd || matchers[j].Allowed().IsEmpty))
                        throw new InvalidOperationException($"row {j} step {step}: the mask refuses the replayed token {id} ({tokenizer.IdToToken(id)})");
                    matchers[j].Advance(id);
                }
            }
            var sorted = times.Order().ToArray();
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{(format == "json_object" ? format : Path.GetFileName(format)),-14} {pass,-9} {rowsIds.Length,5} {steps,6} {times.Average(),9:F3} {sorted[steps / 2],8:F3} {sorted[(int)(steps * 0.99)],8:F3} {sorted[^1],8:F3} {vocabulary.Walks - walks,6} {vocabulary.Checks - checks,8} {(GC.GetTotalAllocatedBytes(precise: true) - allocated) / 1e6,9:F1}"));
            if (Environment.GetEnvironmentVariable("BENCH_TEXT") is not null && pass == "measured")
                foreach (var r in rowsIds.Take(3)) Console.Error.WriteLine(tokenizer.Decode(r));
        }
    }
    return 0;
}
if (args.Length > 2 && args[2] == "concurrent")
{
    // As `osprey benchmark --concurrency ROWS --response_format json_object` on a random-weight model: each step,
    // every row's mask is computed (in parallel, as the engine's Constrain does), then each row takes a token
    // drawn uniformly from its own mask (a random model's choice among the allowed tokens; not timed, the GPU's
    // part). A row that is complete or has taken STEPS tokens is replaced by a new request.
    var rows = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 32;
    var steps = args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 64;
    var rounds = args.Length > 5 ? int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture) : 6;
    Console.WriteLine($"{"grammar",-12} {"round",5} {"steps",6} {"mean_ms",9} {"p50_ms",8} {"p99_ms",8} {"max_ms",8} {"walks",6} {"clears",6} {"checks",8} {"masks",6} {"alloc_MB",9} {"gcs",5}");
    // BENCH_SCHEMA=FILE: that schema instead of the built-in nested one (tools/structured_bench.sh's person schema, say).
    var schema = Environment.GetEnvironmentVariable("BENCH_SCHEMA") is { Length: > 0 } file ? File.ReadAllText(file) : Schema;
    foreach (var (name, grammar) in new[] { ("json_object", JsonSchemaGrammar.AnyObject), ("json_schema", JsonSchemaGrammar.FromSchema(schema)) })
    {
        var rng = new Random(7);
        for (var round = 1; round <= rounds; round++)
        {
            var matchers = Enumerable.Range(0, rows).Select(_ => new GrammarMatcher(grammar, vocabulary)).ToArray();
            var (walks, clears, checks) = (vocabulary.Walks, vocabulary.Clears, vocabulary.Checks);
            var (allocated, collections) = (GC.GetTotalAllocatedBytes(precise: true), GC.CollectionCount(0));
            var times = new double[steps];
            var distinct = new HashSet<ulong[]>(ReferenceEqualityComparer.Instance);
            var clock = new Stopwatch();
            for (var step = 0; step < steps; step++)
            {
                clock.Restart();
                Parallel.For(0, rows, j => matchers[j].Allowed());
                times[step] = clock.Elapsed.TotalMilliseconds;
                if (Environment.GetEnvironmentVariable("BENCH_VERBOSE") is not null)
                    Console.Error.WriteLine($"step {step}: {times[step]:F1} ms, walks {vocabulary.Walks - walks}, checks {vocabulary.Checks - checks}, clears {vocabulary.Clears - clears}");
                for (var j = 0; j < rows; j++)
                {
                    var mask = matchers[j].Allowed();
                    distinct.Add(mask.Bits);
                    var id = mask.IsEmpty ? -1 : Draw(mask, rng);
                    if (id < 0) { matchers[j] = new GrammarMatcher(grammar, vocabulary); continue; } // ended: a new request
                    matchers[j].Advance(id);
                }
            }
            Array.Sort(times);
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{name,-12} {round,5} {steps,6} {times.Average(),9:F3} {times[times.Length / 2],8:F3} {times[(int)(times.Length * 0.99)],8:F3} {times[^1],8:F3} {vocabulary.Walks - walks,6} {vocabulary.Clears - clears,6} {vocabulary.Checks - checks,8} {distinct.Count,6} {(GC.GetTotalAllocatedBytes(precise: true) - allocated) / 1e6,9:F1} {GC.CollectionCount(0) - collections,5}"));
        }
    }
    return 0;
}

Console.WriteLine($"{"grammar",-22} {"pass",-17} {"steps",6} {"mean_ms",9} {"p50_ms",8} {"p99_ms",8} {"max_ms",8} {"total_s",8} {"walks",6}");
foreach (var (name, grammar, document) in cases)
{
    foreach (var (pass, seed) in new[] { ("warm-up pretty", 1), ("warm-up compact", 2), ("measured pretty", 3), ("measured compact", 4) })
    {
        var text = Pretty(document(new Random(seed), target), seed);
        if (!grammar.Accepts(text)) throw new InvalidOperationException($"{name}: the generated document does not fit the grammar.");
        var ids = tokenizer.EncodeIds(text, addSpecialTokens: false);
        var matcher = new GrammarMatcher(grammar, vocabulary);
        var walks = vocabulary.Walks;
        var times = new double[ids.Length];
        var clock = new Stopwatch();
        for (var i = 0; i < ids.Length; i++)
        {
            clock.Restart();
            var mask = matcher.Allowed();
            times[i] = clock.Elapsed.TotalMilliseconds;
            if (!mask.Allows(ids[i])) throw new InvalidOperationException($"{name}: step {i} refuses the document's token {ids[i]} ({tokenizer.IdToToken(ids[i])}).");
            matcher.Advance(ids[i]);
        }
        if (!matcher.CanEnd) throw new InvalidOperationException($"{name}: the document is complete but the matcher cannot end.");
        Array.Sort(times);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{name,-22} {pass,-17} {ids.Length,6} {times.Average(),9:F3} {times[times.Length / 2],8:F3} {times[(int)(times.Length * 0.99)],8:F3} {times[^1],8:F3} {times.Sum() / 1000,8:F2} {vocabulary.Walks - walks,6}"));
    }
}
return 0;

// A token drawn uniformly from the mask's allowed ids (its bits less the refused ones).
static int Draw(TokenMask mask, Random rng)
{
    while (true)
    {
        var total = 0;
        foreach (var w in mask.Bits) total += System.Numerics.BitOperations.PopCount(w);
        var k = rng.Next(total);
        for (var w = 0; w < mask.Bits.Length; w++)
        {
            var c = System.Numerics.BitOperations.PopCount(mask.Bits[w]);
            if (k >= c) { k -= c; continue; }
            var word = mask.Bits[w];
            for (; k > 0; k--) word &= word - 1;
            var id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
            if (mask.Allows(id)) return id;
            break;
        }
    }
}

// Pretty-prints with 2-space indentation on odd seeds and compactly on even ones, as models write both.
static string Pretty(string json, int seed)
{
    using var doc = JsonDocument.Parse(json);
    var options = new JsonWriterOptions { Indented = seed % 2 == 1, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    using var stream = new MemoryStream();
    using (var writer = new Utf8JsonWriter(stream, options)) doc.WriteTo(writer);
    return System.Text.Encoding.UTF8.GetString(stream.ToArray());
}

static string Words(Random r, int max)
{
    string[] words = ["alpha", "river", "stone", "the", "quick", "Zürich", "data", "model", "42", "night", "blue", "open-source", "tokens", "café", "über", "x", "graph", "C#"];
    var n = r.Next(1, max + 1);
    var b = new StringBuilder();
    for (var i = 0; i < n; i++) b.Append(i == 0 ? "" : " ").Append(words[r.Next(words.Length)]);
    return b.ToString();
}

// Within a maxLength (counted in code points; the words are all in the BMP, so chars are code points).
static string Clip(string s, int max) => s.Length <= max ? s : s[..max];

static string Key(Random r)
{
    string[] keys = ["name", "id", "value", "items", "count", "description", "created_at", "tags", "enabled", "score", "parent", "children", "url", "type"];
    return keys[r.Next(keys.Length)] + (r.Next(3) == 0 ? "_" + r.Next(100) : "");
}

// Any JSON: nested objects and arrays of strings, numbers, booleans and null, about `target` tokens long.
static string FreeDocument(Random r, int target)
{
    var root = new System.Text.Json.Nodes.JsonObject();
    while (root.ToJsonString().Length < target * 3) root[Key(r) + "_" + root.Count] = FreeValue(r, 0);
    return root.ToJsonString();
}

static System.Text.Json.Nodes.JsonNode? FreeValue(Random r, int depth)
{
    switch (r.Next(depth >= 4 ? 5 : 7))
    {
        case 0: return Words(r, 8);
        case 1: return r.Next(-1000, 100000);
        case 2: return Math.Round(r.NextDouble() * 1000, 3);
        case 3: return r.Next(2) == 0;
        case 4: return null;
        case 5:
            var o = new System.Text.Json.Nodes.JsonObject();
            for (var i = r.Next(1, 5); i > 0; i--) o[Key(r) + i] = FreeValue(r, depth + 1);
            return o;
        default:
            var a = new System.Text.Json.Nodes.JsonArray();
            for (var i = r.Next(0, 5); i > 0; i--) a.Add(FreeValue(r, depth + 1));
            return a;
    }
}

// A value of Schema above, its items array long enough for about `target` tokens.
static string SchemaDocument(Random r, int target)
{
    var items = new System.Text.Json.Nodes.JsonArray();
    var doc = new System.Text.Json.Nodes.JsonObject
    {
        ["id"] = r.Next(1, 1_000_000),
        ["title"] = Clip(Words(r, 6), 60),
        ["active"] = true,
        ["owner"] = new System.Text.Json.Nodes.JsonObject { ["name"] = Clip(Words(r, 3), 40), ["email"] = "someone@example.org", ["role"] = "admin" },
        ["items"] = items,
        ["notes"] = null,
    };
    while (doc.ToJsonString().Length < target * 3 && items.Count < 64)
    {
        var tags = new System.Text.Json.Nodes.JsonArray();
        for (var i = r.Next(0, 4); i > 0; i--) tags.Add(Clip(Words(r, 2), 20));
        var attributes = new System.Text.Json.Nodes.JsonObject();
        for (var i = r.Next(0, 3); i > 0; i--) attributes[Key(r)] = r.Next(2) == 0 ? Words(r, 2) : r.Next(0, 500);
        items.Add(new System.Text.Json.Nodes.JsonObject
        {
            ["sku"] = "SKU-" + r.Next(10000, 99999), ["qty"] = r.Next(1, 50), ["price"] = Math.Round(r.NextDouble() * 200, 2),
            ["tags"] = tags, ["attributes"] = attributes,
        });
    }
    return doc.ToJsonString();
}
