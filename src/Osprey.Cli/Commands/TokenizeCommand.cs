using Osprey.Cli.Args;
using Osprey.Inference;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey tokenize</c>: a JSON-lines filter over a model's tokenizer (encode text, render and encode chat
/// templates), or a throughput benchmark: parse → <see cref="Tokenize.Run"/>.
/// </summary>
internal sealed class TokenizeCommand : ICommand
{
    public string Name => "tokenize";

    public string Summary => "Encode text and render chat templates with a model's tokenizer, one JSON line in, one out.";

    public string Usage => OptionSet.For<TokenizeOptions>().Help() +
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
        var tokenize = options.Bind<TokenizeOptions>();
        options.EnsureNoUnknownFlags();
        Tokenize.Run(tokenize, stdin, stdout, stderr);
        return 0;
    }
}
