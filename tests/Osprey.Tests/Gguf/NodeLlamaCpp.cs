using System.Diagnostics;
using System.Text.Json;
using Osprey.Tests.Tokenization;

namespace Osprey.Tests.Gguf;

/// <summary>
/// llama.cpp itself, through npm's <c>node-llama-cpp</c> (prebuilt CPU binaries), installed at test time with
/// <c>npm i -E</c> into the shared test cache (<see cref="NpmTokenizers.CacheRoot"/>), once per machine. Runs a list of
/// greedy continuations from token ids in one node process.
/// </summary>
public static class NodeLlamaCpp
{
    /// <summary>The pinned version.</summary>
    public const string Version = "3.21.1";

    private static readonly object s_lock = new();

    // Float32 KV cache and no flash attention, so an f32 GGUF computes in f32 throughout (llama.cpp's default KV cache
    // is f16, which moves near-tied logits). One thread pair keeps it polite on a 2-core CI machine.
    private const string Script = """
        import {getLlama} from "./node_modules/node-llama-cpp/dist/index.js";
        import {readFileSync} from "node:fs";
        const jobs = JSON.parse(readFileSync(process.argv[2], "utf8"));
        const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
        const out = [];
        for (const job of jobs) {
          const model = await llama.loadModel({modelPath: job.model});
          const context = await model.createContext({contextSize: 256, flashAttention: false,
            experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", threads: 2});
          const ids = [];
          let probs = null;
          for await (const r of context.getSequence().evaluateWithMetadata(job.prompt, {probabilities: true}, {temperature: 0})) {
            if (probs === null) probs = Array.from({length: job.vocab}, (_, i) => r.probabilities.get(i) ?? 0);
            ids.push(r.token);
            if (ids.length >= job.n) break;
          }
          out.push({ids, probs});
          await context.dispose();
          await model.dispose();
        }
        process.stdout.write(JSON.stringify(out));
        """;

    // Vocabulary-only loads (no weights, no context): llama.cpp's own tokenizer, special tokens parsed in the text and
    // nothing added around it (llama_tokenize with add_special false, parse_special true).
    private const string TokenizeScript = """
        import {getLlama} from "./node_modules/node-llama-cpp/dist/index.js";
        import {readFileSync} from "node:fs";
        const jobs = JSON.parse(readFileSync(process.argv[2], "utf8"));
        const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
        const out = [];
        for (const job of jobs) {
          const model = await llama.loadModel({modelPath: job.model, vocabOnly: true});
          out.push(job.texts.map(t => Array.from(model.tokenize(t, true))));
          await model.dispose();
        }
        process.stdout.write(JSON.stringify(out));
        """;

    /// <summary>One request: a GGUF file, a prompt of token ids, how many tokens to generate, the vocabulary size.</summary>
    public sealed record Job(string Model, int[] Prompt, int N, int Vocab);

    /// <summary>The answer: greedy ids and the first step's next-token probabilities.</summary>
    public sealed record Result(int[] Ids, double[] Probs);

    /// <summary>The folder holding node_modules/node-llama-cpp, installing it on first use.</summary>
    public static string Folder()
    {
        var target = Path.Combine(NpmTokenizers.CacheRoot, "npm", $"node-llama-cpp-{Version}");
        lock (s_lock)
        {
            if (File.Exists(Path.Combine(target, "node_modules", "node-llama-cpp", "package.json"))) return target;
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            var work = target + ".tmp-" + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(work);
            try
            {
                Run("npm", ["i", "-E", $"node-llama-cpp@{Version}", "--prefix", work, "--no-audit", "--no-fund", "--ignore-scripts"], work, TimeSpan.FromMinutes(10));
                try { Directory.Move(work, target); }
                catch (IOException) when (File.Exists(Path.Combine(target, "node_modules", "node-llama-cpp", "package.json"))) { }
            }
            finally
            {
                if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            }
            return target;
        }
    }

    /// <summary>Tokenizes each list of texts with the vocabulary of its GGUF file, all in one node process.</summary>
    public static IReadOnlyList<int[][]> Tokenize(IReadOnlyList<(string Model, string[] Texts)> jobs)
    {
        var folder = Folder();
        var script = WriteScript(folder, "osprey-tokenize.mjs", TokenizeScript);
        var input = Path.Combine(Path.GetTempPath(), $"osprey-llamacpp-{Guid.NewGuid():N}.json");
        File.WriteAllText(input, JsonSerializer.Serialize(jobs.Select(j => new { model = j.Model, texts = j.Texts })));
        try
        {
            var stdout = Run("node", [script, input], folder, TimeSpan.FromMinutes(5));
            using var doc = JsonDocument.Parse(stdout);
            return doc.RootElement.EnumerateArray()
                .Select(e => e.EnumerateArray().Select(ids => ids.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray())
                .ToList();
        }
        finally
        {
            File.Delete(input);
        }
    }

    private static string WriteScript(string folder, string name, string text)
    {
        var script = Path.Combine(folder, name);
        if (!File.Exists(script) || File.ReadAllText(script) != text)
        {
            var tmp = script + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllText(tmp, text);
            File.Move(tmp, script, overwrite: true);
        }
        return script;
    }

    /// <summary>Runs <paramref name="jobs"/> in one node process.</summary>
    public static IReadOnlyList<Result> Evaluate(IReadOnlyList<Job> jobs)
    {
        var folder = Folder();
        var script = WriteScript(folder, "osprey-evaluate.mjs", Script);
        var input = Path.Combine(Path.GetTempPath(), $"osprey-llamacpp-{Guid.NewGuid():N}.json");
        File.WriteAllText(input, JsonSerializer.Serialize(jobs.Select(j => new { model = j.Model, prompt = j.Prompt, n = j.N, vocab = j.Vocab })));
        try
        {
            var stdout = Run("node", [script, input], folder, TimeSpan.FromMinutes(5));
            using var doc = JsonDocument.Parse(stdout);
            return doc.RootElement.EnumerateArray()
                .Select(e => new Result(
                    e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                    e.GetProperty("probs").EnumerateArray().Select(x => x.GetDouble()).ToArray()))
                .ToList();
        }
        finally
        {
            File.Delete(input);
        }
    }

    private static string Run(string file, string[] args, string directory, TimeSpan limit)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} took more than {limit}");
        }
        if (process.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr.Result}");
        return stdout.Result;
    }
}
