using System.Text;
using Osprey.Cli.Args;
using Osprey.Inference;
using Osprey.Tokenization;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey tokenize</c>: a JSON-lines filter over a model's tokenizer (encode text, render and encode chat
/// templates) through <see cref="Templates.TokenizerRequests"/>, plus a throughput benchmark. Needs only the tokenizer files: no weights, no libtorch.
/// </summary>
internal sealed class TokenizeCommand : ICommand
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public string Name => "tokenize";

    public string Summary => "Encode text and render chat templates with a model's tokenizer, one JSON line in, one out.";

    public string Usage =>
        "  --model DIR|ID           Folder with tokenizer.json (weights not needed), or a hub id in the local cache.\n" +
        "  --input FILE             Read JSON lines from FILE instead of stdin.\n" +
        "  --output FILE            Write JSON lines to FILE instead of stdout.\n" +
        "  --benchmark_file FILE    Instead: time encoding FILE's lines and print one JSON line of throughput.\n" +
        "  --num_threads N          Benchmark threads; 1 encodes line by line, N > 1 uses EncodeBatch (default 1).\n" +
        "  --repeat R               Benchmark passes to time after the warm-up (>= 1 pass and 1 s; default 3).\n" +
        "  --template NAME          Training lines (\"labels\": true): chat format; default the model's own template,\n" +
        "                           or chatml|qwen|qwen3|llama3|llama2|mistral|gemma|phi3|deepseek|default.\n" +
        "  --system TEXT            Training lines: system message for conversations without one.\n" +
        "  --loss_scale MODE        Training lines: default (every assistant turn) | last_round | all.\n" +
        "\n" +
        "Input lines:  {\"text\": \"...\", \"add_special_tokens\": true}            -> {\"ids\": [...], \"decoded\": \"...\"}\n" +
        "              {\"messages\": [...], \"add_generation_prompt\": true,      -> {\"text\": \"<rendered>\", \"ids\": [...]}\n" +
        "               \"tools\": [...], \"documents\": [...], other keys = template variables}\n" +
        "              {\"messages\": [...], \"labels\": true}                 -> {\"text\": ..., \"ids\": [...], \"labels\": [...]}\n" +
        "               (training encoding: labels are the ids where a token carries loss, else -100)\n" +
        "A bad line prints {\"error\": \"...\"} and the run goes on; blank lines are skipped.\n";

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, Console.In, stdout, stderr);

    public int Run(OptionReader options, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var model = options.String("model");
        var input = options.String("input");
        var output = options.String("output");
        var benchmark = options.String("benchmark_file");
        var threads = options.Int("num_threads", 1);
        var repeat = options.Int("repeat", 3);
        var templateName = options.String("template");
        var system = options.String("system");
        var lossScale = options.String("loss_scale", "default");
        options.EnsureNoUnknownFlags();

        if (model is null) throw new UserError("osprey tokenize needs --model; pass a folder with tokenizer.json or a hub id in the local cache.");
        if (threads < 1) throw new UserError($"--num_threads must be 1 or more, got {threads}.");
        if (repeat < 1) throw new UserError($"--repeat must be 1 or more, got {repeat}.");
        if (benchmark is not null && input is not null) throw new UserError("--benchmark_file and --input both name the input; give one.");
        if (input is not null && !File.Exists(input)) throw new UserError($"--input {input} does not exist; pass a JSON-lines file or leave --input out to read stdin.");
        if (benchmark is not null && !File.Exists(benchmark)) throw new UserError($"--benchmark_file {benchmark} does not exist; pass a text file with one document per line.");

        var folder = Hub.HubCache.ResolveModel(model);
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "pass a model folder that has its tokenizer files.");
        var requests = new Templates.TokenizerRequests(tokenizer, templateName, new Templates.TemplateOptions
        {
            System = system,
            LossScale = ParseLossScale(lossScale),
        });

        TextWriter? outputFile = output is null ? null : new StreamWriter(output, append: false, Utf8);
        try
        {
            var writer = outputFile ?? stdout;
            if (benchmark is not null)
            {
                writer.WriteLine(TokenizerBenchmark.Run(tokenizer, benchmark, threads, repeat));
                writer.Flush();
                return 0;
            }

            using var inputFile = input is null ? null : new StreamReader(input, Utf8);
            requests.Run(inputFile ?? stdin, writer);
            return 0;
        }
        finally
        {
            outputFile?.Dispose();
        }
    }

    private static Templates.LossScale ParseLossScale(string value)
    {
        try
        {
            return Templates.TemplateFlags.ParseLossScale(value);
        }
        catch (OspreyException e)
        {
            throw new UserError($"--loss_scale: {e.Message}");
        }
    }
}
