using Osprey.Cli.Args;
using Osprey.Datasets;
using Osprey.Options;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey encode</c>: loads datasets and encodes them exactly as training will (template, loss masks,
/// --max_length/--truncation_strategy, --packing), writing JSON lines or showing samples with their loss tokens
/// marked. Parse → <see cref="Encode.Run"/> → print.
/// </summary>
internal sealed class EncodeCommand : ICommand
{
    public string Name => "encode";

    public string Summary => "Encode datasets as training sees them (template, loss masks, truncation, packing) to JSON lines.";

    public string Usage => OptionSet.For<EncodeOptions>().Help();

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr) => Run(options, stdout, stderr, null);

    /// <summary>
    /// The encoding run; <paramref name="cachedDatasetFolder"/> set means <c>osprey export --to_cached_dataset true
    /// --output_dir DIR</c>: write the cached-dataset folder and nothing else.
    /// </summary>
    internal static int Run(OptionReader options, TextWriter stdout, TextWriter stderr, string? cachedDatasetFolder)
    {
        var encode = options.Bind<EncodeOptions>();
        options.EnsureNoUnknownFlags();
        if (cachedDatasetFolder is not null) encode = encode with { ToCachedDataset = cachedDatasetFolder };
        // Colors only on a terminal that wants them; anything else gets the ⟦ ⟧ marks.
        var color = encode.Show is > 0 && ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;
        Encode.Run(encode, stdout, stderr, color);
        return 0;
    }
}
