using System.Reflection;

namespace Osprey.Cli;

/// <summary>The verbs <c>osprey</c> knows, looked up by name.</summary>
public sealed class CommandRegistry
{
    private static readonly Lazy<CommandRegistry> DefaultRegistry = new(() => Discover(typeof(CommandRegistry).Assembly));

    private readonly Dictionary<string, ICommand> _byKey = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates a registry of <paramref name="commands"/>.</summary>
    /// <exception cref="ArgumentException">Two commands share a name, or a name is not a valid verb.</exception>
    public CommandRegistry(IEnumerable<ICommand> commands)
    {
        foreach (var command in commands)
        {
            if (string.IsNullOrWhiteSpace(command.Name) || command.Name.StartsWith('-') || command.Name.Any(char.IsWhiteSpace))
            {
                throw new ArgumentException($"Command {command.GetType().Name} has the name '{command.Name}', which cannot be typed as a verb.", nameof(commands));
            }

            if (!_byKey.TryAdd(Key(command.Name), command))
            {
                throw new ArgumentException($"Commands {_byKey[Key(command.Name)].GetType().Name} and {command.GetType().Name} are both named '{command.Name}'.", nameof(commands));
            }
        }

        Commands = [.. _byKey.Values.OrderBy(c => c.Name, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The commands of the <c>osprey</c> executable: every <see cref="ICommand"/> class in this assembly. Finding
    /// them by reflection means a new verb is one new file, with no list elsewhere to forget to update.
    /// </summary>
    public static CommandRegistry Default => DefaultRegistry.Value;

    /// <summary>The commands, sorted by name.</summary>
    public IReadOnlyList<ICommand> Commands { get; }

    /// <summary>
    /// Builds a registry from every concrete <see cref="ICommand"/> class in <paramref name="assembly"/>; each
    /// needs a parameterless constructor (public or not).
    /// </summary>
    public static CommandRegistry Discover(Assembly assembly)
    {
        var commands = new List<ICommand>();
        foreach (var type in assembly.GetTypes())
        {
            if (type.IsAbstract || type.IsInterface || type.ContainsGenericParameters || !typeof(ICommand).IsAssignableFrom(type))
            {
                continue;
            }

            if (type.GetConstructor(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, Type.EmptyTypes) is null)
            {
                throw new InvalidOperationException($"Command {type.FullName} needs a parameterless constructor so that CommandRegistry.Discover can create it.");
            }

            commands.Add((ICommand)Activator.CreateInstance(type, nonPublic: true)!);
        }

        return new CommandRegistry(commands);
    }

    /// <summary>
    /// The command called <paramref name="name"/>, or null. Case and '_' versus '-' are ignored, matching how
    /// flag names are treated (<c>merge_lora</c> finds <c>merge-lora</c>).
    /// </summary>
    public ICommand? Find(string name) => _byKey.GetValueOrDefault(Key(name));

    private static string Key(string name) => name.Replace('_', '-');
}
