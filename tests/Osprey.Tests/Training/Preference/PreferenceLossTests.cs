using System.Text.Json;
using Osprey.Io;
using Osprey.Training.Preference;
using static TorchSharp.torch;

namespace Osprey.Tests.Training.Preference;

/// <summary>
/// The preference losses against tests/fixtures/preference, written by tools/make_preference_loss_fixtures.py: an
/// independent float64 torch computation of each loss, its metrics and its gradient with respect to every input.
/// </summary>
public sealed class PreferenceLossTests
{
    static string FixtureDir => Path.Combine(TestPaths.Fixtures, "preference");

    static JsonElement Cases => JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixtureDir, "losses.json"))).RootElement;

    /// <summary>Every case in losses.json.</summary>
    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var property in Cases.EnumerateObject()) data.Add(property.Name);
        return data;
    }

    /// <summary>Within 1e-5, relative for values above 1 (float32 arithmetic against a float64 reference).</summary>
    static void AssertClose(double expected, double actual, string what) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected}, got {actual}");

    static PreferenceLossOptions Options(JsonElement o) => new()
    {
        RlhfType = Osprey.Options.OptionSet.ParseChoice<RlhfType>("rlhf_type", o.GetProperty("rlhf_type").GetString()!),
        Beta = o.GetProperty("beta").GetDouble(),
        LossType = o.GetProperty("loss_type").GetString()!,
        LabelSmoothing = o.GetProperty("label_smoothing").GetDouble(),
        RpoAlpha = o.GetProperty("rpo_alpha").GetDouble(),
        SimpoGamma = o.GetProperty("simpo_gamma").GetDouble(),
        CpoAlpha = o.GetProperty("cpo_alpha").GetDouble(),
        DesirableWeight = o.GetProperty("desirable_weight").GetDouble(),
        UndesirableWeight = o.GetProperty("undesirable_weight").GetDouble(),
        CenterRewardsCoefficient = o.GetProperty("center_rewards_coefficient").GetDouble(),
    };

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesTheReferenceLossMetricsAndGradients(string name)
    {
        using var scope = NewDisposeScope();
        var spec = Cases.GetProperty(name);
        var options = Options(spec.GetProperty("options"));
        using var file = SafetensorsFile.Open(Path.Combine(FixtureDir, "losses.safetensors"));
        var names = spec.GetProperty("inputs").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var inputs = names.ToDictionary(n => n, n => file.ReadTensor(n).detach().requires_grad_(true));
        foreach (var input in inputs.Values) Assert.Equal(ScalarType.Float32, input.dtype);
        Tensor In(string n) => inputs[n];
        Tensor? Opt(string n) => inputs.GetValueOrDefault(n);

        var result = spec.GetProperty("function").GetString() switch
        {
            "dpo" => PreferenceLosses.Dpo(In("policy_chosen"), In("policy_rejected"), In("ref_chosen"), In("ref_rejected"), Opt("nll"), options),
            "simpo" => PreferenceLosses.SimPo(In("avg_chosen"), In("avg_rejected"), Opt("nll"), options),
            "cpo" => PreferenceLosses.Cpo(In("policy_chosen"), In("policy_rejected"), In("nll"), options),
            "orpo" => PreferenceLosses.Orpo(In("avg_chosen"), In("avg_rejected"), In("nll"), options),
            "kto" => PreferenceLosses.Kto(In("kto_policy"), In("kto_reference"), file.ReadTensor("desirable"), In("kl_policy"), In("kl_reference"), options),
            "rm" => PreferenceLosses.RewardModel(In("reward_chosen"), In("reward_rejected"), Opt("margin"), options),
            var f => throw new InvalidOperationException($"unknown function {f}"),
        };

        Assert.Equal(ScalarType.Float32, result.Loss.dtype);
        Assert.Equal(0, result.Loss.dim());
        AssertClose(file.ReadTensor($"case.{name}.loss").item<float>(), result.Loss.item<float>(), $"{name} loss");

        var expectedMetrics = spec.GetProperty("metrics").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal);
        Assert.Equal(expectedMetrics, result.Metrics.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, value) in result.Metrics)
        {
            Assert.Equal(0, value.dim());
            Assert.Equal(ScalarType.Float32, value.dtype);
            Assert.False(value.requires_grad, $"{name} metric {key} should be detached");
            AssertClose(file.ReadTensor($"case.{name}.metric.{key}").item<float>(), value.item<float>(), $"{name} metric {key}");
        }

        result.Loss.backward();
        foreach (var (input, tensor) in inputs)
        {
            var expected = file.ReadTensor($"case.{name}.grad.{input}").data<float>().ToArray();
            var actual = tensor.grad is { } g ? g.data<float>().ToArray() : new float[expected.Length]; // unused input: zero gradient
            Assert.Equal(expected.Length, actual.Length);
            for (var i = 0; i < expected.Length; i++) AssertClose(expected[i], actual[i], $"{name} d loss / d {input}[{i}]");
        }
    }

    [Fact]
    public void KtoClampsANegativeKlEstimateAndOmitsAbsentHalves()
    {
        using var scope = NewDisposeScope();
        var policy = tensor(new[] { -10f, -12f });
        var reference = tensor(new[] { -11f, -11f });
        var result = PreferenceLosses.Kto(policy, reference, tensor(new[] { true, true }), tensor(new[] { -20f, -20f }), tensor(new[] { -10f, -10f }), new PreferenceLossOptions { RlhfType = RlhfType.Kto });
        Assert.Equal(0f, result.Metrics["kl"].item<float>());
        Assert.False(result.Metrics.ContainsKey("rewards/rejected"));
        Assert.False(result.Metrics.ContainsKey("rewards/margins"));
        // z = 0: mean(1 - σ(0.1·[1, -1])) = 0.5
        AssertClose(0.5, result.Loss.item<float>(), "kto loss");
    }

    [Fact]
    public void NllTermsNeedAnNll()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new[] { -1f, -2f });
        Assert.Throws<ArgumentException>(() => PreferenceLosses.Dpo(x, x, x, x, null, new PreferenceLossOptions { RpoAlpha = 1 }));
        Assert.Throws<ArgumentException>(() => PreferenceLosses.SimPo(x, x, null, new PreferenceLossOptions { RlhfType = RlhfType.Simpo, Beta = 2, CpoAlpha = 1 }));
        Assert.Throws<ArgumentException>(() => PreferenceLosses.Dpo(x, x, x, tensor(new[] { -1f }), null, new PreferenceLossOptions()));
        var simpo = PreferenceLosses.SimPo(x, x, null, new PreferenceLossOptions { RlhfType = RlhfType.Simpo, Beta = 2, CpoAlpha = 0 });
        AssertClose(-Math.Log(1 / (1 + Math.Exp(1))), simpo.Loss.item<float>(), "simpo without nll"); // -logσ(0 - γ), γ = 1
    }

    [Theory]
    [InlineData("--rlhf_type", "RlhfType")]
    [InlineData("--beta", "Beta")]
    [InlineData("--loss_type", "LossType")]
    [InlineData("--label_smoothing", "LabelSmoothing")]
    [InlineData("--rpo_alpha", "RpoAlpha")]
    [InlineData("--simpo_gamma", "SimpoGamma")]
    [InlineData("--cpo_alpha", "CpoAlpha")]
    [InlineData("--desirable_weight", "DesirableWeight")]
    [InlineData("--undesirable_weight", "UndesirableWeight")]
    [InlineData("--center_rewards_coefficient", "CenterRewardsCoefficient")]
    public void ValidateNamesTheFlag(string flag, string property)
    {
        var valid = new PreferenceLossOptions();
        valid.Validate();
        var bad = property switch
        {
            "RlhfType" => valid with { RlhfType = (RlhfType)99 },
            "Beta" => valid with { Beta = 0 },
            "LossType" => valid with { LossType = "exo_pair" },
            "LabelSmoothing" => valid with { LabelSmoothing = 0.5 },
            "RpoAlpha" => valid with { RpoAlpha = -1 },
            "SimpoGamma" => valid with { SimpoGamma = double.NaN },
            "CpoAlpha" => valid with { CpoAlpha = -0.5 },
            "DesirableWeight" => valid with { DesirableWeight = 0 },
            "UndesirableWeight" => valid with { UndesirableWeight = -1 },
            _ => valid with { CenterRewardsCoefficient = -0.01 },
        };
        var error = Assert.Throws<OspreyException>(bad.Validate);
        Assert.StartsWith(flag + " ", error.Message);
    }

    [Fact]
    public void LossTypeIsOnlyCheckedForDpo()
    {
        new PreferenceLossOptions { RlhfType = RlhfType.Kto, LossType = "kto" }.Validate();
        new PreferenceLossOptions { RlhfType = RlhfType.Simpo, Beta = 2, LossType = "simpo" }.Validate();
    }
}
