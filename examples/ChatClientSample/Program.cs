using Microsoft.Extensions.AI;
using Osprey;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;

namespace ChatClientSample;

/// <summary>
/// Asks a model one question through <see cref="IChatClient"/> and prints the reply as it streams.
/// Usage: <c>ChatClientSample [MODEL_FOLDER] [--device auto|cpu|cuda] [--question TEXT]</c>; with no folder it
/// uses Osprey's built-in demo model (tiny, random weights: the reply is gibberish, the path is real).
/// </summary>
public static class Program
{
    /// <summary>The question asked when none is given.</summary>
    public const string DefaultQuestion = "What is the capital of France?";

    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        try
        {
            return await RunAsync(args, Console.Out);
        }
        catch (OspreyException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    /// <summary>The sample itself: loads the model, streams one answer to <paramref name="output"/>.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, CancellationToken cancel = default)
    {
        string? folder = null, question = null;
        var device = "auto";
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--device" when i + 1 < args.Length: device = args[++i]; break;
                case "--question" when i + 1 < args.Length: question = args[++i]; break;
                default: folder = args[i]; break;
            }
        }
        var load = new ModelLoadOptions { Device = DeviceSpec.Parse(device) };
        // Choose the device before anything loads libtorch (the demo model is written with it).
        TorchRuntime.Initialize(load.Device);
        folder ??= DemoModel.EnsureCreated();

        using var client = OspreyChatClient.Load(folder, load);
        List<ChatMessage> messages =
        [
            new(ChatRole.System, "You are a helpful assistant."),
            new(ChatRole.User, question ?? DefaultQuestion),
        ];
        var options = new ChatOptions { MaxOutputTokens = 64, Temperature = 0 };

        await output.WriteLineAsync($"{client.Metadata.DefaultModelId}> ");
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        await foreach (var update in client.GetStreamingResponseAsync(messages, options, cancel))
        {
            await output.WriteAsync(update.Text);
            await output.FlushAsync(cancel);
            finish ??= update.FinishReason;
            usage ??= update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }
        await output.WriteLineAsync();
        await output.WriteLineAsync($"[finish: {finish}, prompt tokens: {usage?.InputTokenCount}, completion tokens: {usage?.OutputTokenCount}]");
        return 0;
    }
}
