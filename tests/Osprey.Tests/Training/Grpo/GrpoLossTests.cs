using System.Diagnostics;
using System.Text.Json.Nodes;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Grpo;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training.Grpo;

/// <summary>
/// GRPO's losses against tools/grpo_loss_reference.py, an independent PyTorch implementation of the published formulas
/// run with Debian's /usr/bin/python3 (python3-torch): per-token loss, aggregated loss, the gradient with respect to
/// the policy log-probs and the clip/KL metrics, in float32 to 1e-5, for every loss type (grpo, bnpo, dr_grpo, dapo),
/// token and sequence (GSPO) ratios, β 0 and 0.04, ε_high = ε and 0.28, with and without a separate rollout policy.
/// </summary>
public sealed class GrpoLossTests
{
    static JsonObject Reference()
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "tools", "grpo_loss_reference.py"));
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"grpo_loss_reference.py failed (needs python3-torch): {stderr}");
        return JsonNode.Parse(stdout.Result)!.AsObject();
    }

    static float[] Floats(JsonNode? node) => node!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray();

    [Fact]
    public void EveryVariantMatchesTheReference()
    {
        var r = Reference();
        int b = r["B"]!.GetValue<int>(), t = r["T"]!.GetValue<int>();
        var mask = tensor(Floats(r["mask"]), [b, t]);
        var old = tensor(Floats(r["old"]), [b, t]);
        var reference = tensor(Floats(r["ref"]), [b, t]);
        var advantages = tensor(Floats(r["advantages"]));
        var cases = r["cases"]!.AsArray();
        Assert.Equal(64, cases.Count);
        var clipped = 0;
        foreach (var c in cases)
        {
            var name = $"{c!["loss_type"]} {c["level"]} beta {c["beta"]} eps_high {c["epsilon_high"]} old {c["use_old"]}";
            var settings = new GrpoLossSettings(c["loss_type"]!.GetValue<string>(),
                c["level"]!.GetValue<string>() == "sequence" ? ImportanceSamplingLevel.Sequence : ImportanceSamplingLevel.Token,
                c["epsilon"]!.GetValue<double>(), c["epsilon_high"]!.GetValue<double>(), c["beta"]!.GetValue<double>(),
                r["max_completion_length"]!.GetValue<int>(), r["generation_tokens"]!.GetValue<double>());
            var logps = tensor(Floats(r["logps"]), [b, t]).requires_grad_(true);
            var result = GrpoLoss.Compute(logps, c["use_old"]!.GetValue<bool>() ? old : null, reference, advantages, mask, settings);
            result.Loss.backward();
            Assert.True(Math.Abs(result.Loss.ToSingle() - c["loss"]!.GetValue<double>()) <= 1e-5, $"{name}: loss {result.Loss.ToSingle()} vs {c["loss"]}");
            AssertClose(Floats(c["per_token"]), result.PerTokenLoss.detach().reshape(-1).data<float>().ToArray(), Floats(r["mask"]), name + " per-token loss");
            AssertClose(Floats(c["grad"]), logps.grad!.reshape(-1).data<float>().ToArray(), null, name + " gradient");
            foreach (var (key, value) in c["metrics"]!.AsObject())
                Assert.True(Math.Abs(result.Metrics[key].ToSingle() - value!.GetValue<double>()) <= 1e-6, $"{name}: {key} {result.Metrics[key].ToSingle()} vs {value}");
            if (c["metrics"]!["clip_ratio/region_mean"]!.GetValue<double>() > 0) clipped++;
        }
        // The inputs must exercise the clipped branches, or the comparison proves little.
        Assert.True(clipped >= 16, $"only {clipped} cases clip");
    }

    static void AssertClose(float[] expected, float[] actual, float[]? mask, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            if (mask is not null && mask[i] == 0) continue; // padding's per-token values are never used
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"{what}[{i}]: {actual[i]} vs {expected[i]}");
        }
    }
}
