using System.Diagnostics;
using System.Text.Json.Nodes;
using Osprey.Tests.Cli.Commands;
using Osprey.Training.Ppo;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training.Ppo;

/// <summary>
/// PPO's math against tools/ppo_reference.py, an independent PyTorch implementation of the published formulas run with
/// Debian's /usr/bin/python3 (python3-torch; GAE there is an explicit double sum, not a recursion): per-token KL
/// rewards with the score at the last token, reward whitening, GAE advantages and returns, advantage whitening, the
/// clipped policy and value losses with their gradients, clip fractions and approx KL, in float32 to 1e-5, for three
/// settings of kl_coef, gamma, lam, whiten_rewards, cliprange and cliprange_value.
/// </summary>
public sealed class PpoMathTests
{
    static JsonObject Reference()
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(TestPaths.RepoRoot, "tools", "ppo_reference.py"));
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"ppo_reference.py failed (needs python3-torch): {stderr}");
        return JsonNode.Parse(stdout.Result)!.AsObject();
    }

    static float[] Floats(JsonNode? node) => node!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray();

    [Fact]
    public void EverySettingMatchesTheReference()
    {
        var r = Reference();
        int b = r["B"]!.GetValue<int>(), t = r["T"]!.GetValue<int>();
        Tensor Grid(string key) => tensor(Floats(r[key]), [b, t]);
        var maskValues = Floats(r["mask"]);
        var mask = Grid("mask");
        var cases = r["cases"]!.AsArray();
        Assert.Equal(3, cases.Count);
        var policyClipped = 0;
        var valueClipped = 0;
        foreach (var c in cases)
        {
            var name = $"kl_coef {c!["kl_coef"]} gamma {c["gamma"]} lam {c["lam"]} whiten {c["whiten_rewards"]}";
            double D(string key) => c[key]!.GetValue<double>();
            var rewards = PpoMath.Rewards(Grid("logps"), Grid("ref"), tensor(Floats(r["scores"])), mask, D("kl_coef"));
            AssertClose(Floats(c["rewards"]), rewards, maskValues, name + " rewards");
            if (c["whiten_rewards"]!.GetValue<bool>()) rewards = PpoMath.Whiten(rewards, mask, shiftMean: false) * mask;
            AssertClose(Floats(c["whitened_rewards"]), rewards, maskValues, name + " whitened rewards");
            var (advantages, returns) = PpoMath.Gae(rewards, Grid("values"), D("gamma"), D("lam"));
            AssertClose(Floats(c["advantages"]), advantages, maskValues, name + " advantages");
            AssertClose(Floats(c["returns"]), returns, maskValues, name + " returns");
            var whitened = PpoMath.Whiten(advantages, mask) * mask;
            AssertClose(Floats(c["whitened_advantages"]), whitened, maskValues, name + " whitened advantages");

            var logps = Grid("logps").requires_grad_(true);
            var policy = PpoMath.PolicyLoss(logps, Grid("old"), whitened, mask, D("cliprange"));
            policy.Loss.backward();
            Near(D("policy_loss"), policy.Loss, name + " policy loss");
            AssertClose(Floats(c["policy_grad"]), logps.grad!, null, name + " policy gradient");
            Near(D("policy_clipfrac"), policy.ClipFrac, name + " policy clipfrac");
            Near(D("approx_kl"), policy.ApproxKl, name + " approx_kl");

            var values = Grid("values").requires_grad_(true);
            var value = PpoMath.ValueLoss(values, Grid("old_values"), returns, mask, D("cliprange_value"));
            value.Loss.backward();
            Near(D("value_loss"), value.Loss, name + " value loss");
            AssertClose(Floats(c["value_grad"]), values.grad!, null, name + " value gradient");
            Near(D("value_clipfrac"), value.ClipFrac, name + " value clipfrac");
            if (D("policy_clipfrac") > 0) policyClipped++;
            if (D("value_clipfrac") > 0) valueClipped++;
        }
        // The inputs must reach both clipped branches, or the comparison proves little.
        Assert.True(policyClipped >= 2 && valueClipped >= 2, $"policy clipped in {policyClipped} cases, value in {valueClipped}");
    }

    static void Near(double expected, Tensor actual, string what) =>
        Assert.True(Math.Abs(actual.ToSingle() - expected) <= 1e-5, $"{what}: {actual.ToSingle()} vs {expected}");

    static void AssertClose(float[] expected, Tensor actual, float[]? mask, string what)
    {
        var values = actual.detach().reshape(-1).data<float>().ToArray();
        Assert.Equal(expected.Length, values.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            if (mask is not null && mask[i] == 0) continue; // padding is never used
            Assert.True(Math.Abs(expected[i] - values[i]) <= 1e-5, $"{what}[{i}]: {values[i]} vs {expected[i]}");
        }
    }
}
