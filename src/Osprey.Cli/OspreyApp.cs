using System.Reflection;
using Osprey.Cli.Args;

namespace Osprey.Cli;

/// <summary>
/// The <c>osprey</c> executable: dispatches to a verb and turns exceptions into one-line messages and exit
/// codes. <see cref="Run(string[], TextWriter, TextWriter)"/> is the whole program, so tests call it directly.
/// </summary>
/// <remarks>
/// Exit codes: 0 success (and help), 2 a <see cref="UserError"/>, 1 an internal error, 130 cancelled; a verb may
/// return others.
/// </remarks>
public static class OspreyApp
{
    /// <summary>The exit code of a <see cref="UserError"/>; argparse (and so ms-swift) uses 2 for usage errors too.</summary>
    public const int UserErrorExitCode = 2;

    /// <summary>The exit code of an unexpected exception.</summary>
    public const int InternalErrorExitCode = 1;

    private const string Description = "run, fine-tune and serve Hugging Face language models from .NET";

    /// <summary>The process entry point.</summary>
    public static int Main(string[] args) => Run(args, Console.In, Console.Out, Console.Error, CommandRegistry.Default);

    /// <summary>Runs <c>osprey</c> with <paramref name="args"/> and the built-in commands; stdin is the console's.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) =>
        Run(args, Console.In, stdout, stderr, CommandRegistry.Default);

    /// <summary>Runs <c>osprey</c> with <paramref name="args"/> and the built-in commands, reading input from <paramref name="stdin"/>.</summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr) =>
        Run(args, stdin, stdout, stderr, CommandRegistry.Default);

    /// <summary>Runs <c>osprey</c> with <paramref name="args"/> and the commands of <paramref name="registry"/>; stdin is the console's.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CommandRegistry registry) =>
        Run(args, Console.In, stdout, stderr, registry);

    /// <summary>Runs <c>osprey</c> with <paramref name="args"/>, input from <paramref name="stdin"/> and the commands of <paramref name="registry"/>.</summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr, CommandRegistry registry)
    {
        // Known before parsing, so that errors in parsing itself can show their stack with --debug.
        var debug = args.Any(IsDebugFlag);
        try
        {
            return Dispatch(args, stdin, stdout, stderr, registry, ref debug);
        }
        catch (OspreyException e) // UserError and the library's user-fixable errors
        {
            stderr.WriteLine($"osprey: {e.Message}");
            if (debug)
            {
                stderr.WriteLine(e);
            }

            return UserErrorExitCode;
        }
        catch (OperationCanceledException e)
        {
            stderr.WriteLine("osprey: cancelled.");
            if (debug)
            {
                stderr.WriteLine(e);
            }

            return 130;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"osprey: internal error: {e.Message}");
            stderr.WriteLine(debug
                ? e.ToString()
                : "osprey: this is a bug in osprey, not in your command; rerun with --debug for the stack trace and report it.");
            return InternalErrorExitCode;
        }
    }

    /// <summary>The version of <c>osprey</c>: the assembly's informational version.</summary>
    public static string Version =>
        typeof(OspreyApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(OspreyApp).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    private static int Dispatch(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr, CommandRegistry registry, ref bool debug)
    {
        // Before the verb only global flags make sense: --help, --version and --debug.
        var i = 0;
        for (; i < args.Length && args[i].StartsWith('-'); i++)
        {
            var token = args[i];
            if (IsHelpFlag(token))
            {
                stdout.Write(GeneralUsage(registry));
                return 0;
            }

            if (token == "--version")
            {
                stdout.WriteLine($"osprey {Version}");
                return 0;
            }

            if (!IsDebugFlag(token) && !token.StartsWith("--debug=", StringComparison.Ordinal))
            {
                throw new UserError($"'{token}' must come after a command, as in 'osprey <command> {token}'; run 'osprey --help' to list the commands.");
            }
        }

        if (i == args.Length)
        {
            stdout.Write(GeneralUsage(registry));
            return 0;
        }

        var verb = args[i];
        var rest = args[(i + 1)..];
        if (verb == "help")
        {
            var topic = rest.FirstOrDefault(token => !token.StartsWith('-'));
            stdout.Write(topic is null ? GeneralUsage(registry) : CommandUsage(FindCommand(registry, topic)));
            return 0;
        }

        var command = FindCommand(registry, verb);
        if (rest.Any(IsHelpFlag))
        {
            stdout.Write(CommandUsage(command));
            return 0;
        }

        // NPROC_PER_NODE=N osprey sft …: this process becomes the launcher of N workers running the same command.
        if (command.RunsOnSeveralDevices && Osprey.Distributed.DistributedEnvironment.Current is { IsLaunchRequested: true } launch)
        {
            return Osprey.Distributed.WorkerLauncher.Run([.. SelfCommand(), verb, .. rest], launch, stderr);
        }

        // A tensor-parallel server starts its workers as this same command (docs/distributed.md).
        WorkerCommand = [.. SelfCommand(), verb, .. rest];
        if (rest.Length > 0 && command.Actions.Contains(rest[0]))
        {
            rest = ["--" + rest[0], .. rest[1..]];
        }
        var options = new OptionReader(ParsedArgs.Parse(rest), command.Name, stderr);
        debug |= options.Bool("debug", false);
        var exitCode = command.Run(options, stdin, stdout, stderr);

        // A verb that never checks would silently ignore misspelt flags, the mistake that costs a user a
        // training run; fail loudly so the verb's author notices in the first test.
        if (exitCode == 0 && !options.CheckedUnknownFlags)
        {
            throw new InvalidOperationException($"Command '{command.Name}' finished without calling OptionReader.EnsureNoUnknownFlags().");
        }

        return exitCode;
    }

    /// <summary>The command line that runs the current verb again: this program, the verb and its arguments.</summary>
    internal static IReadOnlyList<string> WorkerCommand { get; private set; } = [];

    /// <summary>How to start this program again: the apphost itself, or <c>dotnet osprey.dll</c>.</summary>
    private static string[] SelfCommand()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("the process path is unknown");
        return Path.GetFileNameWithoutExtension(host) == "dotnet" ? [host, typeof(OspreyApp).Assembly.Location] : [host];
    }

    private static ICommand FindCommand(CommandRegistry registry, string verb)
    {
        var command = registry.Find(verb);
        if (command is not null)
        {
            return command;
        }

        if (registry.Commands.Count == 0)
        {
            throw new UserError($"Unknown command '{verb}': this build of osprey has no commands yet; run 'osprey --version' to check which build this is.");
        }

        var names = registry.Commands.Select(c => c.Name).ToList();
        var guess = NameSuggester.Closest(verb, names);
        var hint = guess is null ? string.Empty : $" (did you mean {guess}?)";
        return verb.StartsWith('-')
            ? throw new UserError($"'{verb}' must come after a command; the commands are {string.Join(", ", names)}.")
            : throw new UserError($"Unknown command '{verb}'{hint}; the commands are {string.Join(", ", names)}.");
    }

    private static bool IsHelpFlag(string token) => token is "--help" or "-h" or "--help=true";

    private static bool IsDebugFlag(string token) =>
        token == "--debug" || (token.StartsWith("--debug=", StringComparison.Ordinal) && token[8..].ToLowerInvariant() is "true" or "1" or "yes");

    private static string GeneralUsage(CommandRegistry registry)
    {
        var text = new StringWriter();
        // The build metadata after '+' (the commit) belongs in --version, not in every help screen.
        text.WriteLine($"osprey {Version.Split('+')[0]}: {Description}.");
        text.WriteLine();
        text.WriteLine("Usage: osprey <command> [--flag value ...]");
        text.WriteLine();
        text.WriteLine("Commands:");
        if (registry.Commands.Count == 0)
        {
            text.WriteLine("  (none in this build)");
        }

        var width = registry.Commands.Select(c => c.Name.Length).DefaultIfEmpty(0).Max();
        foreach (var command in registry.Commands)
        {
            text.WriteLine($"  {command.Name.PadRight(width)}  {command.Summary}");
        }

        text.WriteLine();
        text.WriteLine("Global flags:");
        text.Write(GlobalFlagsText);
        text.WriteLine("  --version          Print the version of osprey.");
        text.WriteLine();
        text.WriteLine("Flags are snake_case (--max_new_tokens); kebab-case (--max-new-tokens) works too.");
        text.WriteLine("Run 'osprey <command> --help' for a command's flags.");
        return text.ToString();
    }

    private static string CommandUsage(ICommand command)
    {
        var text = new StringWriter();
        text.WriteLine($"Usage: osprey {command.Name} [--flag value ...]");
        text.WriteLine();
        text.WriteLine(command.Summary);
        text.WriteLine();
        text.WriteLine("Flags:");
        text.WriteLine(command.Usage.TrimEnd());
        text.WriteLine();
        text.WriteLine("Global flags:");
        text.Write(GlobalFlagsText);
        return text.ToString();
    }

    private const string GlobalFlagsText =
        "  --config FILE...   Read flag defaults from YAML or JSON files; flags on the command line win.\n" +
        "  --debug            Show the full exception when something fails.\n" +
        "  --help             Show this help.\n";
}
