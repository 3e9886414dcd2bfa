using Osprey.Io;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training.Preference;

/// <summary>
/// Preference losses on a tiny model batch equal transformers + PEFT (tools/make_preference_model_fixtures.py, run on
/// the GPU machine): the policy is the tiny qwen2 with the PEFT fixture adapter, the reference the same weights with
/// the adapter off, as <c>osprey rlhf</c> does; row log-probabilities within 1e-4, losses within 1e-5.
/// </summary>
public sealed class PreferenceModelBatchTests
{
    static string Fixture(string path) => Path.Combine(TestPaths.Fixtures, path);

    [Fact]
    public void LossesOnATinyModelBatchEqualTransformersAndPeft()
    {
        TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var model = CausalLM.Load(Fixture("parity/qwen2"), CPU, ScalarType.Float32);
        var (options, _) = PeftAdapter.ReadConfig(Fixture("peft/qwen2-lora"));
        model.AttachLora(options);
        PeftAdapter.LoadInto(model, Fixture("peft/qwen2-lora"));
        model.eval();
        using var f = SafetensorsFile.Open(Fixture("preference/model_batch.safetensors"));
        using var scope = NewDisposeScope();
        Tensor Read(string name) => f.ReadTensor(name);
        Tensor Logps(Tensor ids, Tensor labels, bool adapters)
        {
            model.SetAdaptersEnabled(adapters);
            using var r = model.ForwardBackward(ids, labels, null, new TrainForwardOptions { Backward = false, RowLogProbs = true });
            model.SetAdaptersEnabled(true);
            return r.RowLogProbs!.clone();
        }
        var ids = Read("input_ids");
        var labels = Read("labels");
        var policy = Logps(ids, labels, true);
        var reference = Logps(ids, labels, false);
        Assert.True((policy - Read("policy_logps")).abs().max().ToDouble() < 1e-4);
        Assert.True((reference - Read("reference_logps")).abs().max().ToDouble() < 1e-4);

        var counts = Read("counts");
        const int n = 3;
        Tensor C(Tensor t) => t.narrow(0, 0, n);
        Tensor R(Tensor t) => t.narrow(0, n, n);
        var nll = C(policy).neg() / C(counts);
        void Check(string name, PreferenceLossResult result) =>
            Assert.True(Math.Abs(result.Loss.ToDouble() - Read("loss." + name).ToDouble()) < 1e-5, $"{name}: {result.Loss.ToDouble()} vs {Read("loss." + name).ToDouble()}");
        Check("dpo", PreferenceLosses.Dpo(C(policy), R(policy), C(reference), R(reference), null, new PreferenceLossOptions { RlhfType = RlhfType.Dpo, Beta = 0.1 }));
        Check("simpo", PreferenceLosses.SimPo(C(policy) / C(counts), R(policy) / R(counts), null, new PreferenceLossOptions { RlhfType = RlhfType.Simpo, Beta = 2.0, SimpoGamma = 1.0, CpoAlpha = 0 }));
        Check("cpo", PreferenceLosses.Cpo(C(policy), R(policy), nll, new PreferenceLossOptions { RlhfType = RlhfType.Cpo, Beta = 0.1, CpoAlpha = 1.0 }));
        Check("orpo", PreferenceLosses.Orpo(C(policy) / C(counts), R(policy) / R(counts), nll, new PreferenceLossOptions { RlhfType = RlhfType.Orpo, Beta = 0.1 }));

        // KTO: the chosen rows with desirable flags; Osprey's mismatched KL rows (prompt i + response i+1) must score
        // as the fixture's did, and the loss must match.
        var rows = Enumerable.Range(0, n).Select(i => new Osprey.Datasets.KtoExample(new Osprey.Datasets.EncodedSample(
            ids[i].data<long>().Select(v => (int)v).ToArray(), labels[i].data<long>().Select(v => (int)v).ToArray()), true)).ToList();
        var mismatched = Osprey.Training.BatchPlan.Collate(Enumerable.Range(0, n).Select(i => rows[i].MismatchedWith(rows[(i + 1) % n])).ToList(), 0);
        var klPolicy = Logps(tensor(mismatched.InputIds, [mismatched.Rows, mismatched.Columns]), tensor(mismatched.Labels, [mismatched.Rows, mismatched.Columns]), true);
        Assert.True((klPolicy - Read("kto.policy_kl")).abs().max().ToDouble() < 1e-4);
        Check("kto", PreferenceLosses.Kto(C(policy), C(reference), Read("kto.desirable"), Read("kto.policy_kl"), Read("kto.reference_kl"),
            new PreferenceLossOptions { RlhfType = RlhfType.Kto, Beta = 0.1 }));
    }
}
