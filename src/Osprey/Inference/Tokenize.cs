using System.Text;
using Osprey.Templates;
using Osprey.Tokenization;

namespace Osprey.Inference;

/// <summary>
/// The library call under <c>osprey tokenize</c>: a JSON-lines filter over a model's tokenizer (encode text, render
/// and encode chat templates) through <see cref="TokenizerRequests"/>, or a throughput benchmark. Needs only the
/// tokenizer files: no weights, no libtorch.
/// </summary>
public static class Tokenize
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Runs <paramref name="options"/>, reading <paramref name="stdin"/> and writing <paramref name="stdout"/> unless files are named.</summary>
    /// <exception cref="OspreyException">A flag is wrong, or the tokenizer cannot be loaded.</exception>
    public static void Run(TokenizeOptions options, TextReader stdin, TextWriter stdout, TextWriter log)
    {
        options.Validate();
        var folder = options.Model.ResolveFolder(log);
        var tokenizer = ChatPrompt.LoadTokenizer(folder, "pass a model folder that has its tokenizer files.");
        var requests = new TokenizerRequests(tokenizer, options.Template, new TemplateOptions { System = options.System, LossScale = options.LossScale });

        using var outputFile = options.Output is null ? null : new StreamWriter(options.Output, append: false, Utf8);
        var writer = (TextWriter?)outputFile ?? stdout;
        if (options.BenchmarkFile is not null)
        {
            writer.WriteLine(TokenizerBenchmark.Run(tokenizer, options.BenchmarkFile, options.NumThreads, options.Repeat));
            writer.Flush();
            return;
        }
        using var inputFile = options.Input is null ? null : new StreamReader(options.Input, Utf8);
        requests.Run(inputFile ?? stdin, writer);
    }
}
