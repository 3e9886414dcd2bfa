using Osprey.Inference;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Io;
using Osprey.Models.Llava;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>osprey rlhf --rlhf_type dpo</c> on LLaVA image pairs (tests/fixtures/vl/llava_clip, a tiny random LLaVA from
/// transformers): the reported evaluation loss is DPO's published formula (Rafailov et al. 2023, Eq. 7) applied by hand
/// to sequence log-probs from the model's plain inference forward (<see cref="LlavaModel.Forward"/>, its own vision
/// tower and projector) on the saved checkpoint and on the base model; the frozen tower and projector stay bit-identical.
/// </summary>
public sealed class LlavaPreferenceTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string Model => Path.Combine(Root, "llava_clip");
    static bool Present => File.Exists(Path.Combine(Root, "llava_images", "images.json"));
    static string Image(string name) => Path.Combine(Root, "llava_images", name);

    static object[] Conversation(string user, string assistant) => [new { role = "user", content = user }, new { role = "assistant", content = assistant }];

    static readonly (string User, string Chosen, string Rejected, string Image)[] Pairs =
    [
        ("<image>What is this?", "A wide picture.", "A cat.", "wide.png"),
        ("Describe <image> please.", "A tall one.", "Nothing at all, sorry.", "tall.jpg"),
    ];

    /// <summary>Σ log p(label) over the labelled positions, from the full-sequence logits of the plain forward.</summary>
    static double SequenceLogProb(LlavaModel model, EncodedSample s)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var input = tensor(s.InputIds.Select(i => (long)i).ToArray(), [1, s.InputIds.Length], dtype: ScalarType.Int64);
        var logp = model.Forward(input, (s.Images ?? []).Cast<ImageTiles>().ToList()).to_type(ScalarType.Float64).log_softmax(-1)[0];
        var sum = 0.0;
        for (var p = 0; p + 1 < s.InputIds.Length; p++)
            if (s.Labels[p + 1] != EncodedSample.IgnoreIndex) sum += logp[p, s.Labels[p + 1]].item<double>();
        return sum;
    }

    static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));

    static Dictionary<string, byte[]> VisionTensors(string file) =>
        SafetensorsBytes.Read(file, n => n.StartsWith("vision_tower.", StringComparison.Ordinal) || n.StartsWith("multi_modal_projector.", StringComparison.Ordinal));

    [Fact]
    public void Dpo_ReportedLossIsThePublishedFormulaOnPlainForwardLogProbs_AndTheFrozenPartsStayBitIdentical()
    {
        if (!Present) return;
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        File.WriteAllLines(rows, Pairs.Select(p => JsonSerializer.Serialize(new { messages = Conversation(p.User, p.Chosen), rejected_response = p.Rejected, images = new[] { Image(p.Image) } })));
        const double beta = 0.5;
        var run = CliRun.Of(["rlhf", "--device", "cpu", "--model", Model, "--add_version", "false", "--rlhf_type", "dpo", "--train_type", "full",
            "--dataset", rows, "--val_dataset", rows, "--beta", "0.5", "--max_steps", "3", "--per_device_train_batch_size", "2",
            "--per_device_eval_batch_size", "2", "--learning_rate", "1e-4", "--logging_steps", "1", "--eval_steps", "3", "--save_steps", "3",
            "--output_dir", temp.File("out")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).ToList();
        var eval = log.Single(r => r.ContainsKey("eval_loss"));
        var losses = log.Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.Equal(Math.Log(2), losses[0], 5); // step 1: the policy is its reference
        Assert.True(losses[^1] < losses[0], $"loss should fall: {string.Join(", ", losses)}");

        // Each side encoded as a plain SFT row with its image (not by the preference encoder).
        File.WriteAllLines(temp.File("chosen.jsonl"), Pairs.Select(p => JsonSerializer.Serialize(new { messages = Conversation(p.User, p.Chosen), images = new[] { Image(p.Image) } })));
        File.WriteAllLines(temp.File("rejected.jsonl"), Pairs.Select(p => JsonSerializer.Serialize(new { messages = Conversation(p.User, p.Rejected), images = new[] { Image(p.Image) } })));
        var encoder = new DatasetEncoder(Tokenizer.Load(Model));
        var processor = Osprey.Models.VisionInput.Read(Model)!;
        var sides = VisionDatasetEncoding.Encode(encoder, processor, [temp.File("chosen.jsonl")])
            .Zip(VisionDatasetEncoding.Encode(encoder, processor, [temp.File("rejected.jsonl")])).ToArray();
        Assert.All(sides, s => Assert.Single(s.First.Images!));
        double[] zs;
        using (var policy = LlavaModel.Load(temp.File("out/checkpoint-3"), CPU, ScalarType.Float32))
        using (var reference = LlavaModel.Load(Model, CPU, ScalarType.Float32))
            zs = sides.Select(s => SequenceLogProb(policy, s.First) - SequenceLogProb(policy, s.Second)
                - (SequenceLogProb(reference, s.First) - SequenceLogProb(reference, s.Second))).ToArray();
        // L = −mean log σ(β·z), z = (π_c − π_r) − (ref_c − ref_r).
        var expected = zs.Average(z => -LogSigmoid(beta * z));
        Assert.True(Math.Abs(expected - Math.Log(2)) > 1e-2 && expected > 1e-2, $"the policy should differ from its reference by now, unsaturated (loss {expected})");
        Assert.True(Math.Abs(expected - eval["eval_loss"].GetDouble()) < 1e-5, $"eval_loss {eval["eval_loss"]} vs by hand {expected}");

        // --freeze_vit and --freeze_aligner (the defaults): the tower and projector are the checkpoint's bytes.
        var original = VisionTensors(Path.Combine(Model, "model.safetensors"));
        var after = VisionTensors(temp.File("out/checkpoint-3/model.safetensors"));
        Assert.NotEmpty(original);
        Assert.Equal(original.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in original) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed with --freeze_vit true");
    }
}
