using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Grpo;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// GRPO (Shao et al. 2024) and its variants, top to bottom: setup (policy, rewards, reference = adapters-off base or a
/// frozen copy) → loop (when the generation batch is used up: sample G completions per prompt on the live policy,
/// score them, group advantages, reference and rollout log-probs; then each micro-batch's clipped surrogate with
/// gradients) → finish. A generation batch is per_device_train_batch_size × steps_per_generation completions, used
/// num_iterations times; every optimizer step takes gradient_accumulation_steps micro-batches from it.
/// </summary>
/// <remarks>
/// Rollouts are sampled by <see cref="RolloutSampler"/>: the in-process continuous-batching engine over the training
/// model itself (adapters on, evaluation mode), so they always see the current weights with nothing copied, and
/// <see cref="TokenGenerator"/> on the same model where the engine cannot run.
/// </remarks>
public static class GrpoRecipe
{
    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires.</summary>
    /// <exception cref="OspreyException">No prompts, or batch sizes that do not fit the group size.</exception>
    public static TrainingResult Run(TrainingRun run, GrpoRun data, CancellationToken cancel = default)
    {
        run.Options.Validate();
        data.Loss.Validate();
        data.Options.Validate();
        if (data.Prompts.Count == 0) throw new OspreyException("the training set has no prompts; check --dataset.");
        var o = run.Options;
        var g = data.Options;
        var gradAcc = o.ResolvedGradientAccumulationSteps;
        var stepsPerGeneration = g.StepsPerGeneration ?? gradAcc;
        var generationSize = o.BatchSize * stepsPerGeneration;
        if (generationSize % g.NumGenerations != 0)
            throw new OspreyException($"the generation batch (--per_device_train_batch_size {o.BatchSize} x --steps_per_generation {stepsPerGeneration} = {generationSize} completions) must be a multiple of --num_generations {g.NumGenerations}; raise --per_device_train_batch_size or --steps_per_generation, or lower --num_generations.");
        var promptsPerGeneration = generationSize / g.NumGenerations;
        var microPerGeneration = stepsPerGeneration * g.NumIterations;

        // Setup.
        using var session = TrainingSession.Open(run);
        var model = session.Model;
        using var rewards = RewardSet.Create(g, run.Load);
        var beta = data.Loss.ResolvedBeta;
        using var reference = beta == 0 || (o.TrainType == TrainType.Lora && data.ReferenceModel is null) ? null : LoadReference(session, data);
        var generationsPerEpoch = (data.Prompts.Count + promptsPerGeneration - 1) / promptsPerGeneration;
        var stepsPerEpoch = Math.Max(1, (long)generationsPerEpoch * microPerGeneration / gradAcc);
        using var loop = TrainingLoop.Start(session, stepsPerEpoch);
        var state = session.Resume is { } resume && !o.ResumeOnlyModel ? GrpoState.Load(resume) ?? Derived(loop.StartStep) : new GrpoState();
        GrpoState Derived(long start)
        {
            // A checkpoint without grpo_state.json: only exact when every generation batch fed whole steps.
            var micro = start * gradAcc;
            return new GrpoState { Generations = micro / microPerGeneration, Cursor = micro / microPerGeneration * promptsPerGeneration };
        }
        using var sampler = RolloutSampler.For(session, data, promptsPerGeneration * g.NumGenerations);
        var generation = new Generation(session, data, rewards, reference, sampler, promptsPerGeneration, stepsPerGeneration);
        using var completionsLog = g.LogCompletions ? new StreamWriter(Path.Combine(session.RunDirectory, "completions.jsonl"), append: true) : null;
        var settings = new GrpoLossSettings(data.Loss.ResolvedLossType, g.ImportanceSamplingLevel, g.Epsilon, g.ResolvedEpsilonHigh, beta, g.MaxCompletionLength, 0);

        // Loop.
        var step = loop.StartStep;
        for (; step < loop.TotalSteps; step++)
        {
            if (loop.ShouldStop(cancel)) break;
            using var stepScope = NewDisposeScope();
            PhaseTimer.Restart(model.Device);
            var lossSum = zeros(1, dtype: ScalarType.Float32, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            var metrics = new Dictionary<string, double>();
            var rolloutSeconds = 0.0;
            var clock = Stopwatch.StartNew();
            for (int k = 0; k < gradAcc; k++)
            {
                if (state.Batch is null || state.NextMicro >= microPerGeneration)
                {
                    var started = clock.Elapsed.TotalSeconds;
                    generation.Make(state, step);
                    rolloutSeconds += clock.Elapsed.TotalSeconds - started;
                    if (completionsLog is not null) LogCompletions(completionsLog, state, data, rewards, step + 1);
                }
                var batch = state.Batch!;
                var micro = state.NextMicro % stepsPerGeneration;
                var rows = batch.Skip(micro * o.BatchSize).Take(o.BatchSize).ToList();
                var tokens = batch.Where(r => !(g.OverlongFilter && r.Truncated)).Sum(r => r.Completion.Length);
                var (loss, m) = Update(session, rows, settings with { GenerationTokens = tokens }, g.OverlongFilter, step, k, 1.0 / gradAcc);
                lossSum.add_(loss / gradAcc);
                foreach (var (key, v) in m) metrics[key] = metrics.GetValueOrDefault(key) + v / gradAcc;
                foreach (var (key, v) in state.BatchMetrics) metrics[key] = v;
                loop.Window.Tokens += rows.Sum(r => r.PromptIds.Length + r.Completion.Length);
                state.NextMicro++;
            }
            metrics["time/rollout_and_scoring_seconds"] = rolloutSeconds;
            metrics["time/update_seconds"] = clock.Elapsed.TotalSeconds - rolloutSeconds;
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens: 1, metrics);
            loop.SaveIfDue(done, evaluated: false);
            SaveState(session, state, done);
        }

        // Finish.
        var result = loop.Finish(step);
        SaveState(session, state, step);
        return result;
    }

    /// <summary>Writes grpo_state.json into checkpoint-<paramref name="done"/> when that checkpoint was just saved.</summary>
    static void SaveState(TrainingSession session, GrpoState state, long done)
    {
        var folder = Path.Combine(session.RunDirectory, $"checkpoint-{done}");
        if (Directory.Exists(folder) && !File.Exists(Path.Combine(folder, GrpoState.FileName))) state.Save(folder);
    }

    static CausalLM LoadReference(TrainingSession session, GrpoRun data)
    {
        var folder = data.ReferenceModel ?? session.Run.ModelDirectory;
        var reference = CausalLM.Load(folder, session.Run.Load);
        reference.eval();
        session.Run.Log.WriteLine($"osprey: GRPO reference model loaded from {folder}.");
        return reference;
    }

    /// <summary>One micro-batch's forward and backward with the GRPO loss; returns the loss and its metrics.</summary>
    static (Tensor Loss, Dictionary<string, double> Metrics) Update(TrainingSession session, List<Rollout> rows, GrpoLossSettings settings, bool overlongFilter, long step, int micro, double scale)
    {
        using var scope = NewDisposeScope();
        var model = session.Model;
        var layout = Layout.Of(rows, model.Device, overlongFilter);
        var advantages = tensor(rows.Select(r => (float)r.Advantage).ToArray(), device: model.Device);
        var old = rows[0].OldLogps is null ? null : layout.Padded(rows.Select(r => r.OldLogps!));
        var refs = rows[0].RefLogps is null ? null : layout.Padded(rows.Select(r => r.RefLogps!));
        Dictionary<string, double>? values = null;
        using var forward = model.ForwardBackward(layout.Ids, layout.Labels, null, new TrainForwardOptions
        {
            Backward = true,
            LossScale = scale,
            GradientCheckpointing = session.Options.GradientCheckpointing,
            LossChunkRows = session.ChunkRows,
            DropoutSeed = PreferenceSteps.DropoutSeed(session.Options.Seed, step, micro),
            TokenObjective = tokenLogps =>
            {
                var logps = layout.Scatter(tokenLogps);
                var result = GrpoLoss.Compute(logps, old, refs, advantages, layout.Mask, settings);
                values = result.Metrics.ToDictionary(m => m.Key, m => m.Value.ToDouble());
                return result.Loss;
            },
        });
        values!["entropy"] = (layout.Scatter(forward.TokenEntropy!) * layout.Mask).sum().ToDouble() / Math.Max(1.0, layout.Mask.sum().ToDouble());
        return (forward.LossSum.clone().MoveToOuterDisposeScope(), values);
    }

    /// <summary>Each completion's token log-probs under <paramref name="model"/>, without gradients (evaluation mode).</summary>
    internal static List<float[]> TokenLogProbs(CausalLM model, List<Rollout> rows, long chunkRows, int batchSize)
    {
        var result = new List<float[]>();
        for (var start = 0; start < rows.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var part = rows.Skip(start).Take(batchSize).ToList();
            var layout = Layout.Of(part, model.Device, false);
            using var r = model.ForwardBackward(layout.Ids, layout.Labels, null, new TrainForwardOptions { Backward = false, TokenLogProbs = true, LossChunkRows = chunkRows });
            var flat = r.TokenLogProbs!.cpu().data<float>().ToArray();
            var at = 0;
            foreach (var row in part)
            {
                result.Add(flat[at..(at + row.Completion.Length)]);
                at += row.Completion.Length;
            }
        }
        return result;
    }

    static void LogCompletions(StreamWriter log, GrpoState state, GrpoRun data, RewardSet rewards, long step)
    {
        foreach (var r in state.Batch!)
        {
            var scores = new JsonObject();
            for (var f = 0; f < rewards.Functions.Count; f++) scores[rewards.Functions[f].Name] = double.IsNaN(r.Rewards[f]) ? null : r.Rewards[f];
            var line = new JsonObject
            {
                ["step"] = step,
                ["prompt"] = JsonSerializer.SerializeToNode(data.Prompts[r.Prompt].Messages),
                ["completion"] = r.Text,
                ["rewards"] = scores,
                ["reward"] = r.Reward,
                ["advantage"] = r.Advantage,
                ["completion_tokens"] = r.Completion.Length,
                ["truncated"] = r.Truncated,
            };
            log.WriteLine(line.ToJsonString());
        }
        log.Flush();
    }

    /// <summary>
    /// Prompt + completion rows, right-padded, labels on the completion tokens only, and the map from the forward pass's
    /// labelled-token order (row-major) and a value model's positions to the padded completion grid [B, T] the loss
    /// works on (PPO uses it too).
    /// </summary>
    internal sealed class Layout
    {
        public required Tensor Ids { get; init; }
        public required Tensor Labels { get; init; }
        public required Tensor Mask { get; init; }
        public required Tensor Index { get; init; }
        public required Tensor ValuePositions { get; init; }
        public required int Rows { get; init; }
        public required int Width { get; init; }

        public static Layout Of(List<Rollout> rows, Device device, bool overlongFilter)
        {
            var columns = rows.Max(r => r.PromptIds.Length + r.Completion.Length);
            var width = Math.Max(1, rows.Max(r => r.Completion.Length));
            var ids = new long[rows.Count * columns];
            var labels = new long[rows.Count * columns];
            var mask = new float[rows.Count * width];
            var positions = new long[rows.Count * width];
            var index = new List<long>();
            for (var i = 0; i < rows.Count; i++)
            {
                var r = rows[i];
                Array.Fill(labels, -100, i * columns, columns);
                for (var j = 0; j < r.PromptIds.Length; j++) ids[i * columns + j] = r.PromptIds[j];
                for (var j = 0; j < r.Completion.Length; j++)
                {
                    var at = i * columns + r.PromptIds.Length + j;
                    ids[at] = r.Completion[j];
                    labels[at] = r.Completion[j];
                    mask[i * width + j] = overlongFilter && r.Truncated ? 0 : 1;
                    index.Add(i * width + j);
                    // A token's value is read where its log-prob is: at the position before it.
                    positions[i * width + j] = at - 1;
                }
            }
            return new Layout
            {
                Ids = tensor(ids, [rows.Count, columns], device: device),
                Labels = tensor(labels, [rows.Count, columns], device: device),
                Mask = tensor(mask, [rows.Count, width], device: device),
                Index = tensor(index.ToArray(), device: device),
                ValuePositions = tensor(positions, device: device),
                Rows = rows.Count,
                Width = width,
            };
        }

        /// <summary>Token values [N] in the forward pass's order → [B, T] (0 in the padding); differentiable.</summary>
        public Tensor Scatter(Tensor tokens) => zeros(Rows * Width, dtype: tokens.dtype, device: tokens.device).index_add(0, Index, tokens, 1).reshape(Rows, Width);

        /// <summary>Per-completion values → [B, T].</summary>
        public Tensor Padded(IEnumerable<float[]> values) => Scatter(tensor(values.SelectMany(v => v).ToArray(), device: Ids.device));

        /// <summary>A value model's per-position scores [B, columns] → each completion token's value [B, T] (0 in the padding); differentiable.</summary>
        public Tensor Values(Tensor scores) => scores.reshape(-1).index_select(0, ValuePositions).reshape(Rows, Width) * Mask;
    }

    /// <summary>Makes generation batches: prompts from the stream, rollouts on the live policy, rewards, advantages, log-probs.</summary>
    sealed class Generation(TrainingSession session, GrpoRun data, RewardSet rewards, CausalLM? reference, RolloutSampler sampler, int promptsPerGeneration, int stepsPerGeneration)
    {
        readonly PromptOrder _order = new(data.Prompts.Count, session.Options.Seed);

        public void Make(GrpoState state, long step)
        {
            var g = data.Options;
            var model = session.Model;
            var clock = Stopwatch.StartNew();
            var kept = new List<List<Rollout>>();
            var spare = new List<List<Rollout>>();
            double rolloutSeconds = 0, scoringSeconds = 0, generatedTokens = 0;
            var zeroSpread = 0;
            var groups = 0;
            for (var round = 0; ; round++)
            {
                var want = promptsPerGeneration - kept.Count;
                var prompts = _order.Take(state.Cursor, want);
                state.Cursor += want;
                var t0 = clock.Elapsed.TotalSeconds;
                var rollouts = sampler.Sample(data, prompts, g.NumGenerations, session.Options.Seed, state.Generations, round);
                rolloutSeconds += clock.Elapsed.TotalSeconds - t0;
                generatedTokens += rollouts.Sum(r => r.Completion.Length);
                t0 = clock.Elapsed.TotalSeconds;
                var inputs = rollouts.Select(r => new RewardInput(r.Text, data.Prompts[r.Prompt].Messages, data.Prompts[r.Prompt].Row, r.Completion.Length, r.Truncated)).ToList();
                var perFunction = rewards.Score(inputs);
                var total = rewards.Total(perFunction);
                scoringSeconds += clock.Elapsed.TotalSeconds - t0;
                for (var i = 0; i < rollouts.Count; i++)
                {
                    rollouts[i].Rewards = perFunction.Select(f => f[i]).ToArray();
                    rollouts[i].Reward = total[i];
                }
                for (var p = 0; p < want; p++)
                {
                    var group = rollouts.Skip(p * g.NumGenerations).Take(g.NumGenerations).ToList();
                    var flat = GroupAdvantages.Std(group.Select(r => r.Reward).ToList()) < 1e-6;
                    groups++;
                    if (flat) zeroSpread++;
                    (g.DynamicSample && flat ? spare : kept).Add(group);
                }
                if (!g.DynamicSample || kept.Count >= promptsPerGeneration || round >= g.MaxResampleTimes) break;
            }
            // Dynamic sampling keeps only groups with spread; when resampling runs out, flat groups fill the batch.
            kept.AddRange(spare.Take(promptsPerGeneration - kept.Count));
            var batch = kept.SelectMany(x => x).ToList();
            state.Generations++;

            var (advantages, zero) = GroupAdvantages.Compute(batch.Select(r => r.Reward).ToList(), g.NumGenerations, g.ScaleRewards);
            for (var i = 0; i < batch.Count; i++) batch[i].Advantage = advantages[i];

            // Log-probs before any update: the reference's (β ≠ 0) and the rollout policy's (when the batch feeds more than one step).
            var t1 = clock.Elapsed.TotalSeconds;
            model.eval();
            try
            {
                if (data.Loss.ResolvedBeta != 0)
                {
                    var frozen = reference ?? model;
                    if (reference is null) model.SetAdaptersEnabled(false);
                    try
                    {
                        var refs = TokenLogProbs(frozen, batch, session.ChunkRows, session.Options.BatchSize);
                        for (var i = 0; i < batch.Count; i++) batch[i].RefLogps = refs[i];
                    }
                    finally
                    {
                        if (reference is null) model.SetAdaptersEnabled(true);
                    }
                }
                if (g.NumIterations > 1 || stepsPerGeneration > session.Options.ResolvedGradientAccumulationSteps)
                {
                    var olds = TokenLogProbs(model, batch, session.ChunkRows, session.Options.BatchSize);
                    for (var i = 0; i < batch.Count; i++) batch[i].OldLogps = olds[i];
                }
            }
            finally
            {
                model.train();
            }
            scoringSeconds += clock.Elapsed.TotalSeconds - t1;

            var m = new Dictionary<string, double>();
            for (var f = 0; f < rewards.Functions.Count; f++)
            {
                var values = batch.Select(r => r.Rewards[f]).Where(v => !double.IsNaN(v)).ToList();
                m[$"rewards/{rewards.Functions[f].Name}/mean"] = values.Count == 0 ? double.NaN : values.Average();
                m[$"rewards/{rewards.Functions[f].Name}/std"] = GroupAdvantages.Std(values);
            }
            var totals = batch.Select(r => r.Reward).ToList();
            m["reward"] = totals.Average();
            m["reward_std"] = Enumerable.Range(0, batch.Count / g.NumGenerations).Average(k => GroupAdvantages.Std(totals.Skip(k * g.NumGenerations).Take(g.NumGenerations).ToList()));
            m["frac_reward_zero_std"] = zero.Count(z => z) / (double)zero.Length;
            m["completions/mean_length"] = batch.Average(r => r.Completion.Length);
            m["completions/min_length"] = batch.Min(r => r.Completion.Length);
            m["completions/max_length"] = batch.Max(r => r.Completion.Length);
            m["completions/clipped_ratio"] = batch.Count(r => r.Truncated) / (double)batch.Count;
            m["time/rollout_seconds"] = rolloutSeconds;
            m["time/scoring_seconds"] = scoringSeconds;
            m["rollout_tokens_per_second"] = generatedTokens / Math.Max(1e-9, rolloutSeconds);
            if (g.DynamicSample) m["dynamic_sample/groups_sampled"] = groups;
            state.Batch = batch;
            state.BatchMetrics = m;
            state.NextMicro = 0;
        }
    }
}
