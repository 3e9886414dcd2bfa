using System.Globalization;
using Osprey.Models;

using TorchSharp;

namespace Osprey.Inference;

/// <summary>
/// <c>osprey infer --input_ids</c>: prompts given as token ids. Prints the generated ids (<c>[i] ids  (reason)</c>,
/// or streamed on one line), a reward model's scores (<c>[i] score</c>), or writes the prompts' logits.
/// </summary>
public static class TokenIdInference
{
    /// <summary>Generates for every prompt as one left-padded batch; <paramref name="stream"/> prints one prompt's ids as they come.</summary>
    public static int Generate(TokenGenerator generator, IReadOnlyList<IReadOnlyList<int>> prompts, SamplingParams options, bool stream, TextWriter stdout, TextWriter stderr)
    {
        if (stream)
        {
            var r = generator.Generate(prompts[0], options, e => { stdout.Write(e.Index == 0 ? $"{e.TokenId}" : $" {e.TokenId}"); stdout.Flush(); });
            stdout.WriteLine();
            stderr.WriteLine($"osprey: {r.Tokens.Count} tokens, finished by {r.Reason.LowerName()}.");
            return 0;
        }
        var results = generator.Generate(prompts, options);
        for (int i = 0; i < results.Count; i++)
            stdout.WriteLine($"[{i}] {string.Join(' ', results[i].Tokens)}  ({results[i].Reason.LowerName()})");
        return 0;
    }

    /// <summary>--save_logits: one forward pass over equal-length prompts, logits in float32 with the ids, as safetensors.</summary>
    public static int SaveLogits(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, string path, TextWriter stdout)
    {
        var length = prompts[0].Count;
        if (prompts.Any(p => p.Count != length)) throw new OspreyException("--save_logits needs prompts of equal length (no padding is applied).");
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var flat = prompts.SelectMany(p => p.Select(i => (long)i)).ToArray();
        var ids = torch.tensor(flat, [prompts.Count, length], device: model.Device);
        var logits = model.Forward(ids).to_type(torch.ScalarType.Float32).cpu();
        Io.SafetensorsWriter.Write(path, [new("input_ids", ids.cpu()), new("logits", logits)]);
        stdout.WriteLine($"osprey: wrote logits [{string.Join(", ", logits.shape)}] to {path}");
        return 0;
    }

    /// <summary>Reward model: one score per prompt, "[i] score" (all labels when there are several).</summary>
    public static int ScoreAll(CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, TextWriter stdout)
    {
        for (var i = 0; i < prompts.Count; i++)
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{i}] {string.Join(' ', Score(model, prompts[i]).Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}"));
        return 0;
    }

    /// <summary>The score head's outputs for one unpadded sequence.</summary>
    public static float[] Score(CausalLM model, IReadOnlyList<int> ids)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var t = torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count], device: model.Device);
        return model.Scores(t, torch.ones_like(t)).cpu().data<float>().ToArray();
    }
}
