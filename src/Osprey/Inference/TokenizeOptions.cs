using Osprey.Hub;
using Osprey.Options;
using Osprey.Templates;

namespace Osprey.Inference;

/// <summary>
/// Everything <c>osprey tokenize</c> takes: the model whose tokenizer files answer, where the JSON lines come from and
/// go, the benchmark mode, and the template flags of training lines. <see cref="Tokenize.Run"/> runs it.
/// </summary>
public sealed record TokenizeOptions
{
    /// <summary>The model whose tokenizer files are used (weights are not needed).</summary>
    [OptionGroup]
    public ModelOptions Model { get; init; } = new();

    /// <summary>JSON lines to read instead of stdin.</summary>
    [Option("input", "Read JSON lines from FILE instead of stdin.", Placeholder = "FILE")]
    public string? Input { get; init; }

    /// <summary>Where the JSON lines go instead of stdout.</summary>
    [Option("output", "Write JSON lines to FILE instead of stdout.", Placeholder = "FILE")]
    public string? Output { get; init; }

    /// <summary>Instead: time encoding this file's lines.</summary>
    [Option("benchmark_file", "Instead: time encoding FILE's lines and print one JSON line of throughput.", Placeholder = "FILE")]
    public string? BenchmarkFile { get; init; }

    /// <summary>Benchmark threads.</summary>
    [Option("num_threads", "Benchmark threads; 1 encodes line by line, N > 1 uses EncodeBatch.")]
    public int NumThreads { get; init; } = 1;

    /// <summary>Benchmark passes after the warm-up.</summary>
    [Option("repeat", "Benchmark passes to time after the warm-up (>= 1 pass and 1 s).", Placeholder = "R")]
    public int Repeat { get; init; } = 3;

    /// <summary>Training lines: the chat template instead of the model's own.</summary>
    [Option("template", "Training lines (\"labels\": true): chat format, or chatml|qwen|qwen3|llama3|llama2|mistral|gemma|phi3|deepseek|default.", DefaultText = "the model's own template", Placeholder = "NAME")]
    public string? Template { get; init; }

    /// <summary>Training lines: the system message for conversations without one.</summary>
    [Option("system", "Training lines: system message for conversations without one.", Placeholder = "TEXT")]
    public string? System { get; init; }

    /// <summary>Training lines: which tokens carry loss.</summary>
    [Option("loss_scale", "Training lines: which tokens carry loss.")]
    public LossScale LossScale { get; init; } = LossScale.Default;

    /// <summary>Checks the values before anything is loaded, naming the flag.</summary>
    /// <exception cref="OspreyException">A value is out of range, or a file is missing.</exception>
    public void Validate()
    {
        if (Model.Model is null) throw new OspreyException("osprey tokenize needs --model; pass a folder with tokenizer.json or a hub id in the local cache.");
        if (NumThreads < 1) throw new OspreyException($"--num_threads must be 1 or more, got {NumThreads}.");
        if (Repeat < 1) throw new OspreyException($"--repeat must be 1 or more, got {Repeat}.");
        if (BenchmarkFile is not null && Input is not null) throw new OspreyException("--benchmark_file and --input both name the input; give one.");
        if (Input is not null && !File.Exists(Input)) throw new OspreyException($"--input {Input} does not exist; pass a JSON-lines file or leave --input out to read stdin.");
        if (BenchmarkFile is not null && !File.Exists(BenchmarkFile)) throw new OspreyException($"--benchmark_file {BenchmarkFile} does not exist; pass a text file with one document per line.");
    }
}
