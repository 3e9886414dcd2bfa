using Osprey.Inference;
using System.Text.Json;
using Osprey.Datasets;
using Osprey.Images;
using Osprey.Io;
using Osprey.Models;
using Osprey.Models.Qwen2Vl;
using Osprey.Tests.Cli.Commands;
using Osprey.Tokenization;
using Osprey.Training;
using Osprey.Training.Reporting;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>osprey rlhf</c> with images on the CPU (tests/fixtures/vl/qwen2_vl, a tiny random Qwen2-VL from transformers):
/// the DPO and KTO losses the trainer reports equal the published formulas applied by hand to sequence log-probs from
/// the model's plain forward (<see cref="Qwen2VlModel.Forward"/>, the inference path with its own vision tower, on the
/// saved checkpoint and on the base model); training lowers the loss, the frozen tower stays bit-identical, and a frozen
/// tower sees each image once however many epochs, sides and reference passes use it; a row whose &lt;image&gt; tags and
/// images differ stops the run with an error naming the row.
/// </summary>
public sealed class VisionPreferenceTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string Model => Path.Combine(Root, "qwen2_vl");
    static string Image(string name) => Path.Combine(Root, "images", name);

    static CliRun Rlhf(params string[] flags) => CliRun.Of(["rlhf", "--device", "cpu", "--model", Model, "--add_version", "false", .. flags]);

    static object[] Conversation(string user, string assistant) => [new { role = "user", content = user }, new { role = "assistant", content = assistant }];

    static string PairRow(string user, string chosen, string rejected, string image) =>
        JsonSerializer.Serialize(new { messages = Conversation(user, chosen), rejected_response = rejected, images = new[] { image } });

    static string SftRow(string user, string assistant, string image) => JsonSerializer.Serialize(new { messages = Conversation(user, assistant), images = new[] { image } });

    static readonly (string User, string Chosen, string Rejected, string Image)[] Pairs =
    [
        ("<image>What is this?", "A wide picture.", "A cat.", "wide.png"),
        ("<image>Describe it.", "A tall one.", "Nothing at all, sorry.", "tall.jpg"),
        ("<image>Which colour?", "Grey.", "Bright red and green.", "small_gray.png"),
    ];

    /// <summary>The rows' chosen and rejected sides encoded as plain SFT rows (not by the preference encoder).</summary>
    static (EncodedSample Chosen, EncodedSample Rejected)[] SidesAsSftRows(TempDirectory temp, int count)
    {
        var chosenFile = temp.File("chosen_sft.jsonl");
        var rejectedFile = temp.File("rejected_sft.jsonl");
        File.WriteAllLines(chosenFile, Pairs.Take(count).Select(p => SftRow(p.User, p.Chosen, Image(p.Image))));
        File.WriteAllLines(rejectedFile, Pairs.Take(count).Select(p => SftRow(p.User, p.Rejected, Image(p.Image))));
        var encoder = new DatasetEncoder(Tokenizer.Load(Model));
        var processor = Osprey.Models.VisionInput.Read(Model)!;
        var chosen = VisionDatasetEncoding.Encode(encoder, processor, [chosenFile]);
        var rejected = VisionDatasetEncoding.Encode(encoder, processor, [rejectedFile]);
        return chosen.Zip(rejected).ToArray();
    }

    /// <summary>Σ log p(label) over the labelled positions, from the full-sequence logits of the model's plain forward.</summary>
    static double SequenceLogProb(Qwen2VlModel model, EncodedSample s) => SequenceLogProb(model, s.InputIds, s.Labels, s.Images ?? []);

    static double SequenceLogProb(Qwen2VlModel model, int[] ids, int[] labels, IReadOnlyList<ProcessedImage> images)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], dtype: ScalarType.Int64);
        var logp = model.Forward(input, images.Cast<ImagePatches>().ToList()).to_type(ScalarType.Float64).log_softmax(-1)[0];
        var sum = 0.0;
        for (var p = 0; p + 1 < ids.Length; p++)
            if (labels[p + 1] != EncodedSample.IgnoreIndex) sum += logp[p, labels[p + 1]].item<double>();
        return sum;
    }

    static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));
    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    static Dictionary<string, byte[]> VisualTensors(string file) => SafetensorsBytes.Read(file, n => n.StartsWith("visual.", StringComparison.Ordinal));

    static int TowerPasses(CliRun run)
    {
        var line = run.Stderr.Split('\n').Concat(run.Stdout.Split('\n')).Single(l => l.Contains("vision tower: ", StringComparison.Ordinal) && l.Contains("image passes", StringComparison.Ordinal));
        var after = line[(line.IndexOf("vision tower: ", StringComparison.Ordinal) + "vision tower: ".Length)..];
        return int.Parse(after[..after.IndexOf(' ', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void Dpo_ReportedLossIsThePublishedFormulaOnPlainForwardLogProbs_AndTheFrozenTowerStaysBitIdentical()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        File.WriteAllLines(rows, Pairs.Take(2).Select(p => PairRow(p.User, p.Chosen, p.Rejected, Image(p.Image))));
        const double beta = 0.5;
        // Full training: the reference is a second copy of the base model; the evaluation after step 3 scores the
        // trained weights (saved in checkpoint-3) against it.
        var run = Rlhf("--rlhf_type", "dpo", "--train_type", "full", "--dataset", rows, "--val_dataset", rows, "--beta", "0.5",
            "--max_steps", "3", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--learning_rate", "1e-4",
            "--logging_steps", "1", "--eval_steps", "3", "--save_steps", "3", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).ToList();
        var eval = log.Single(r => r.ContainsKey("eval_loss"));
        var losses = log.Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        // Step 1: the policy is its reference, so z = 0 and the loss is ln 2 (DPO Eq. 7 with equal log-ratios).
        Assert.Equal(Math.Log(2), losses[0], 5);
        Assert.True(losses[^1] < losses[0], $"loss should fall: {string.Join(", ", losses)}");

        var sides = SidesAsSftRows(temp, 2);
        double[] zs;
        using (var policy = Qwen2VlModel.Load(temp.File("out/checkpoint-3"), CPU, ScalarType.Float32))
        using (var reference = Qwen2VlModel.Load(Model, CPU, ScalarType.Float32))
            zs = sides.Select(s => SequenceLogProb(policy, s.Chosen) - SequenceLogProb(policy, s.Rejected)
                - (SequenceLogProb(reference, s.Chosen) - SequenceLogProb(reference, s.Rejected))).ToArray();
        // Rafailov et al. 2023, Eq. 7: L = −mean log σ(β·z), z = (π_c − π_r) − (ref_c − ref_r).
        var expected = zs.Average(z => -LogSigmoid(beta * z));
        // Neither the start (ln 2) nor saturated: the comparison below must depend on every log-prob.
        Assert.True(Math.Abs(expected - Math.Log(2)) > 1e-2 && expected > 1e-2, $"the policy should differ from its reference by now, unsaturated (loss {expected})");
        Assert.True(Math.Abs(expected - eval["eval_loss"].GetDouble()) < 1e-5, $"eval_loss {eval["eval_loss"]} vs by hand {expected}");
        Assert.True(Math.Abs(zs.Average(z => beta * z) - eval["eval_rewards/margins"].GetDouble()) < 1e-5, $"eval_rewards/margins {eval["eval_rewards/margins"]} vs by hand {zs.Average(z => beta * z)}");

        // --freeze_vit and --freeze_aligner (the defaults): the tower and merger are the checkpoint's bytes.
        var original = VisualTensors(Path.Combine(Model, "model.safetensors"));
        var after = VisualTensors(temp.File("out/checkpoint-3/model.safetensors"));
        Assert.NotEmpty(original);
        Assert.Equal(original.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in original) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed with --freeze_vit true");
        // Two images, each once: the reference copy shares the policy's cache (same folder, same frozen tower).
        Assert.Equal(2, TowerPasses(run));
    }

    [Fact]
    public void Kto_ReportedLossIsThePublishedFormulaOnPlainForwardLogProbs()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("kto.jsonl");
        File.WriteAllLines(rows,
        [
            JsonSerializer.Serialize(new { messages = Conversation(Pairs[0].User, Pairs[0].Chosen), images = new[] { Image(Pairs[0].Image) }, label = true }),
            JsonSerializer.Serialize(new { messages = Conversation(Pairs[1].User, Pairs[1].Rejected), images = new[] { Image(Pairs[1].Image) }, label = false }),
        ]);
        const double beta = 0.5;
        var run = Rlhf("--rlhf_type", "kto", "--train_type", "full", "--dataset", rows, "--val_dataset", rows, "--beta", "0.5",
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--learning_rate", "1e-4",
            "--logging_steps", "1", "--eval_steps", "2", "--save_steps", "2", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var eval = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).Single(r => r.ContainsKey("eval_loss"));

        var sides = SidesAsSftRows(temp, 2);
        var examples = new[] { sides[0].Chosen, sides[1].Rejected };
        var desirable = new[] { true, false };
        static int PromptLength(EncodedSample s) => Array.FindIndex(s.Labels, l => l != EncodedSample.IgnoreIndex);
        // TRL's KL rows: example i's prompt (with its image) followed by example i+1's response.
        (int[] Ids, int[] Labels, IReadOnlyList<ProcessedImage> Images) Mismatched(EncodedSample a, EncodedSample b)
        {
            int p = PromptLength(a), q = PromptLength(b);
            return ([.. a.InputIds[..p], .. b.InputIds[q..]], [.. Enumerable.Repeat(EncodedSample.IgnoreIndex, p), .. b.Labels[q..]], a.Images!);
        }
        var kl = new[] { Mismatched(examples[0], examples[1]), Mismatched(examples[1], examples[0]) };
        double[] r, klDiff;
        using (var policy = Qwen2VlModel.Load(temp.File("out/checkpoint-2"), CPU, ScalarType.Float32))
        using (var reference = Qwen2VlModel.Load(Model, CPU, ScalarType.Float32))
        {
            r = examples.Select(e => SequenceLogProb(policy, e) - SequenceLogProb(reference, e)).ToArray();
            klDiff = kl.Select(k => SequenceLogProb(policy, k.Ids, k.Labels, k.Images) - SequenceLogProb(reference, k.Ids, k.Labels, k.Images)).ToArray();
        }
        // Ethayarajh et al. 2024, Eq. 8 (TRL's kto_loss): z = max(0, mean KL-row log-ratio); desirable 1 − σ(β(r − z)),
        // undesirable 1 − σ(β(z − r)), weights 1, averaged.
        var z = Math.Max(0, klDiff.Average());
        var expected = Enumerable.Range(0, 2).Average(i => desirable[i] ? 1 - Sigmoid(beta * (r[i] - z)) : 1 - Sigmoid(beta * (z - r[i])));
        // Neither the start (0.5) nor saturated: the comparison below must depend on every log-prob.
        Assert.True(Math.Abs(expected - 0.5) > 1e-2 && expected is > 1e-2 and < 0.99, $"the policy should differ from its reference by now, unsaturated (loss {expected})");
        Assert.True(Math.Abs(expected - eval["eval_loss"].GetDouble()) < 1e-5, $"eval_loss {eval["eval_loss"]} vs by hand {expected}");
        Assert.True(Math.Abs(z - eval["eval_kl"].GetDouble()) < 1e-5, $"eval_kl {eval["eval_kl"]} vs by hand {z}");
    }

    [Fact]
    public void RewardModel_OnImagePairs_ReportsThePairwiseLossOfItsOwnRowScores()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        File.WriteAllLines(rows, Pairs.Select(p => PairRow(p.User, p.Chosen, p.Rejected, Image(p.Image))));
        // Full training of the language model and a new score head; the evaluation after step 6 scores the trained
        // weights (saved in checkpoint-6) on all three pairs in one batch: chosen rows, then rejected rows, each with its image.
        var run = Rlhf("--rlhf_type", "rm", "--train_type", "full", "--dataset", rows, "--val_dataset", rows, "--max_steps", "6",
            "--per_device_train_batch_size", "3", "--per_device_eval_batch_size", "3", "--learning_rate", "1e-3", "--logging_steps", "1",
            "--eval_steps", "6", "--save_steps", "6", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = TrainingLog.ReadJsonl(temp.File("out/logging.jsonl")).ToList();
        var losses = log.Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.True(losses[^1] < losses[0], $"the pairwise loss should fall: {string.Join(", ", losses)}");
        var eval = log.Single(r => r.ContainsKey("eval_loss"));

        // Each side scored alone (a batch of one row, its own image) by the saved reward model: the reported loss is
        // InstructGPT's -log σ(r_chosen - r_rejected) over them, so the batched rows got their own images and last tokens.
        var encoder = new DatasetEncoder(Tokenizer.Load(Model));
        var pairs = VisionPreferenceEncoding.EncodePairs(encoder, Osprey.Models.VisionInput.Read(Model)!, [rows]);
        using var rm = CausalLM.Load(temp.File("out/checkpoint-6"), CPU, ScalarType.Float32);
        Assert.True(rm.IsRewardModel);
        double Score(EncodedSample s)
        {
            using var _ = no_grad();
            using var ids = tensor(s.InputIds.Select(i => (long)i).ToArray(), [1, s.Length], dtype: ScalarType.Int64);
            using var scores = rm.Scores(ids, null, s.Images);
            return scores[0, 0].item<float>();
        }
        var margins = pairs.Select(p => Score(p.Chosen) - Score(p.Rejected)).ToArray();
        var expected = margins.Average(m => -LogSigmoid(m));
        Assert.True(Math.Abs(expected - eval["eval_loss"].GetDouble()) < 1e-5, $"eval_loss {eval["eval_loss"]} vs by hand {expected}");

        // `osprey infer` on the saved reward model scores rows with images as the library does.
        var chosenRows = temp.File("chosen.jsonl");
        File.WriteAllLines(chosenRows, Pairs.Select(p => SftRow(p.User, p.Chosen, Image(p.Image))));
        var infer = CliRun.Of(["infer", "--device", "cpu", "--model", temp.File("out/checkpoint-6"), "--val_dataset", chosenRows]);
        Assert.True(infer.ExitCode == 0, infer.ToString());
        var inferred = infer.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble()).ToArray();
        Assert.Equal(pairs.Count, inferred.Length);
        for (var i = 0; i < pairs.Count; i++)
            Assert.True(Math.Abs(inferred[i] - Score(pairs[i].Chosen)) < 1e-5, $"row {i}: infer {inferred[i]} vs library {Score(pairs[i].Chosen)}");

        // The picture reaches the score: the first chosen row with the second pair's picture (same token count) scores otherwise.
        var first = pairs[0].Chosen;
        var swapped = first with { Images = pairs[1].Chosen.Images };
        var processor = Osprey.Models.VisionInput.Read(Model)!;
        Assert.Equal(processor.TokenCount(first.Images![0]), processor.TokenCount(swapped.Images![0]));
        Assert.True(Math.Abs(Score(first) - Score(swapped)) > 1e-4, "the score ignores the image");
    }

    [Fact]
    public void LoraRewardModel_MergedExportScoresAsTheAdapterDoes()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        File.WriteAllLines(rows, Pairs.Select(p => PairRow(p.User, p.Chosen, p.Rejected, Image(p.Image))));
        var run = Rlhf("--rlhf_type", "rm", "--dataset", rows, "--max_steps", "2", "--per_device_train_batch_size", "3",
            "--learning_rate", "1e-2", "--output_dir", temp.File("out"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var adapter = temp.File("out/checkpoint-2");
        var export = CliRun.Of(["export", "--device", "cpu", "--adapters", adapter, "--merge_lora", "true", "--output_dir", temp.File("merged")]);
        Assert.True(export.ExitCode == 0, export.ToString());
        // The merged folder processes images as the base model does: its image processor's settings travel with it.
        Assert.Equal(File.ReadAllText(Path.Combine(Model, "preprocessor_config.json")), File.ReadAllText(temp.File("merged/preprocessor_config.json")));
        var chosenRows = temp.File("chosen.jsonl");
        File.WriteAllLines(chosenRows, Pairs.Select(p => SftRow(p.User, p.Chosen, Image(p.Image))));
        double[] Scores(params string[] model)
        {
            var infer = CliRun.Of(["infer", "--device", "cpu", .. model, "--val_dataset", chosenRows]);
            Assert.True(infer.ExitCode == 0, infer.ToString());
            return infer.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble()).ToArray();
        }
        var attached = Scores("--model", Model, "--adapters", adapter);
        var merged = Scores("--model", temp.File("merged"));
        Assert.Equal(Pairs.Length, attached.Length);
        for (var i = 0; i < attached.Length; i++)
            Assert.True(Math.Abs(attached[i] - merged[i]) < 1e-4, $"row {i}: adapters {attached[i]} vs merged {merged[i]}");
    }

    [Fact]
    public void LoraDpo_LowersTheLoss_AndAFrozenTowerSeesEachImageOnce()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("pairs.jsonl");
        File.WriteAllLines(rows, Pairs.Select(p => PairRow(p.User, p.Chosen, p.Rejected, Image(p.Image))));
        // 2 epochs of 3 pairs, one pair a step: each image is used by the chosen and the rejected row, under the policy
        // and under the reference (adapters off), 4 times a step, 24 times in all (and twice more a step with gradient
        // checkpointing, the default, when a trainable tower must be re-run for its recompute).
        string[] common = ["--rlhf_type", "dpo", "--dataset", rows, "--num_train_epochs", "2", "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2", "--logging_steps", "1", "--save_steps", "100"];
        var cached = Rlhf([.. common, "--output_dir", temp.File("cached")]);
        Assert.True(cached.ExitCode == 0, cached.ToString());
        Assert.Equal(3, TowerPasses(cached));
        var losses = TrainingLog.ReadJsonl(temp.File("cached/logging.jsonl")).Where(r => r.ContainsKey("loss")).Select(r => r["loss"].GetDouble()).ToArray();
        Assert.Equal(6, losses.Length);
        Assert.True(losses[3..].Average() < losses[..3].Average(), $"the second epoch's losses should be lower: {string.Join(", ", losses)}");
        using (var adapter = SafetensorsFile.Open(Directory.GetFiles(temp.File("cached"), "adapter_model.safetensors", SearchOption.AllDirectories).Single()))
        {
            Assert.NotEmpty(adapter.Entries);
            Assert.DoesNotContain(adapter.Entries, e => e.Name.Contains("visual.", StringComparison.Ordinal));
        }

        // A trainable tower (LoRA on its linear layers) cannot reuse features: every use is a pass.
        var open = Rlhf([.. common, "--freeze_vit", "false", "--freeze_llm", "true", "--gradient_checkpointing", "false", "--output_dir", temp.File("open")]);
        Assert.True(open.ExitCode == 0, open.ToString());
        Assert.Equal(24, TowerPasses(open));
    }

    [Fact]
    public void Sft_WithAFrozenTower_EncodesEachImageOnceAcrossEpochs()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("rows.jsonl");
        File.WriteAllLines(rows, Pairs.Take(2).Select(p => SftRow(p.User, p.Chosen, Image(p.Image))));
        // 3 epochs, both rows in each step: 6 image uses, 2 distinct images.
        var run = CliRun.Of(["sft", "--device", "cpu", "--model", Model, "--dataset", rows, "--num_train_epochs", "3", "--per_device_train_batch_size", "2",
            "--gradient_accumulation_steps", "1", "--load_from_cache_file", "false", "--add_version", "false", "--output_dir", temp.File("out")]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(2, TowerPasses(run));
    }

    [Fact]
    public void ImageTagCountMismatch_IsAnErrorNamingTheRow()
    {
        using var temp = new TempDirectory();
        var rows = temp.File("bad.jsonl");
        File.WriteAllLines(rows,
        [
            PairRow("<image>What is this?", "A wide picture.", "A cat.", Image("wide.png")),
            PairRow("<image><image>Compare them.", "Same.", "Different.", Image("tall.jpg")),
        ]);
        var run = Rlhf("--rlhf_type", "dpo", "--dataset", rows, "--max_steps", "1", "--output_dir", temp.File("out"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains($"{rows} line 2: the messages have 2 <image> tag(s) but \"images\" lists 1", run.Stderr);

        // The rejected side's own images (ms-swift's rejected_images) are checked the same way.
        File.WriteAllLines(rows,
        [
            JsonSerializer.Serialize(new { messages = Conversation("<image>What is this?", "A wide picture."), rejected_response = "A cat.",
                images = new[] { Image("wide.png") }, rejected_images = new[] { Image("wide.png"), Image("tall.jpg") } }),
        ]);
        var rejected = Rlhf("--rlhf_type", "dpo", "--dataset", rows, "--max_steps", "1", "--output_dir", temp.File("out2"));
        Assert.NotEqual(0, rejected.ExitCode);
        Assert.Contains($"{rows} line 1 (rejected side): the messages have 1 <image> tag(s) but \"rejected_images\" lists 2", rejected.Stderr);

        // KTO rows need their label.
        File.WriteAllLines(rows, [SftRow("<image>What is this?", "A wide picture.", Image("wide.png"))]);
        var kto = Rlhf("--rlhf_type", "kto", "--dataset", rows, "--max_steps", "1", "--per_device_train_batch_size", "2", "--output_dir", temp.File("out3"));
        Assert.NotEqual(0, kto.ExitCode);
        Assert.Contains($"{rows} line 1: the row has no \"label\"", kto.Stderr);
    }

    static ImagePatches Patches(float value, int gridH = 2, int gridW = 2) =>
        new(Enumerable.Repeat(value, gridH * gridW * 3).ToArray(), 1, gridH, gridW, 3);

    [Fact]
    public void FeatureCache_EncodesEachDistinctImageOnce_AndStaysWithinItsBudget()
    {
        // The "tower" here: one feature row per token (merge 2: 4 patches → 1 token) holding the image's first pixel,
        // so the test can tell which image a row came from.
        var encoded = new List<float>();
        Tensor Encode(IReadOnlyList<ImagePatches> images)
        {
            encoded.AddRange(images.Select(i => i.PixelValues[0]));
            return cat(images.Select(i => full(new long[] { i.TokenCount(2), 5 }, i.PixelValues[0])).ToList(), 0);
        }
        // Budget: two images of one token, 5 float32 each (40 bytes).
        using var cache = new VisionFeatureCache(40);
        var a = Patches(1);
        var b = Patches(2);
        var aCopy = Patches(1); // the same content in another object: the same key
        var first = cache.Features([a, b, a], i => i.TokenCount(2), CPU, Encode);
        Assert.Equal([1f, 2f], encoded);
        Assert.Equal([1f, 2f, 1f], first.select(1, 0).data<float>().ToArray());
        var second = cache.Features([b, aCopy], i => i.TokenCount(2), CPU, Encode);
        Assert.Equal([1f, 2f], encoded);
        Assert.Equal([2f, 1f], second.select(1, 0).data<float>().ToArray());
        Assert.Equal((3L, 2L), (cache.Hits, cache.Misses));
        // A third image evicts the least recently used (a was used after b, so b goes); a grid change is another key.
        cache.Features([Patches(3)], i => i.TokenCount(2), CPU, Encode);
        Assert.Equal(40, cache.Bytes);
        cache.Features([a], i => i.TokenCount(2), CPU, Encode);
        cache.Features([b], i => i.TokenCount(2), CPU, Encode);
        Assert.Equal([1f, 2f, 3f, 2f], encoded);
        cache.Features([Patches(1, 2, 4)], i => i.TokenCount(2), CPU, Encode);
        Assert.Equal([1f, 2f, 3f, 2f, 1f], encoded);
    }
}
