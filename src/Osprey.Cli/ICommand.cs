using Osprey.Cli.Args;

namespace Osprey.Cli;

/// <summary>
/// One verb of <c>osprey</c> (<c>osprey infer ...</c>). A verb is one class under Commands/; the default
/// <see cref="CommandRegistry"/> finds it by reflection, so adding the file is all it takes.
/// </summary>
/// <remarks>
/// Every command is constructed whenever <c>osprey</c> starts (to list them in help and to dispatch), so a
/// constructor must be cheap and must not touch TorchSharp: <c>osprey --help</c> has to work on a machine
/// whose libtorch does not load.
/// </remarks>
public interface ICommand
{
    /// <summary>The verb as typed, kebab-case like ms-swift's (<c>infer</c>, <c>merge-lora</c>).</summary>
    string Name { get; }

    /// <summary>One line for the command list of <c>osprey --help</c>.</summary>
    string Summary { get; }

    /// <summary>
    /// Words accepted right after the verb as actions (<c>osprey dataset list</c>); each is read as the flag of the
    /// same name (<c>--list</c>), so the command sees one kind of input. Empty for most verbs.
    /// </summary>
    IReadOnlyCollection<string> Actions => [];

    /// <summary>
    /// The options records this verb binds, whose declared flags <c>osprey web-ui</c> turns into the verb's form; empty
    /// for verbs the web UI does not run.
    /// </summary>
    IReadOnlyList<Type> OptionsTypes => [];

    /// <summary>
    /// The verb's flags for <c>osprey &lt;verb&gt; --help</c>: one flag per line with a one-line doc, e.g.
    /// <c>"  --max_new_tokens N   Tokens to generate at most (default 512)."</c>. The usage line, the summary
    /// and the global flags are printed around it, so leave them out.
    /// </summary>
    string Usage { get; }

    /// <summary>
    /// Reads the flags from <paramref name="options"/>, calls <see cref="OptionReader.EnsureNoUnknownFlags"/>
    /// before doing any real work, then does the work.
    /// </summary>
    /// <returns>The process exit code: 0 on success.</returns>
    /// <exception cref="UserError">Anything the user can fix; it becomes one line on stderr and exit code 2.</exception>
    int Run(OptionReader options, TextWriter stdout, TextWriter stderr);

    /// <summary>
    /// <see cref="Run(OptionReader, TextWriter, TextWriter)"/> with the input stream too. Verbs that read stdin
    /// (<c>osprey tokenize</c>, interactive <c>osprey infer</c>) implement this overload; the default ignores
    /// <paramref name="stdin"/>. <see cref="OspreyApp"/> always calls this one.
    /// </summary>
    int Run(OptionReader options, TextReader stdin, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr);

    /// <summary>
    /// True for the training verbs that run on several devices: with NPROC_PER_NODE (or NNODES) set and no RANK,
    /// <see cref="OspreyApp"/> becomes the launcher and starts this same command once per worker instead.
    /// </summary>
    bool RunsOnSeveralDevices => false;
}
