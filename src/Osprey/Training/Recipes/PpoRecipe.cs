using System.Diagnostics;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Training.Grpo;
using Osprey.Training.Ppo;
using Osprey.Training.Preference;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Recipes;

/// <summary>
/// PPO for language models as TRL's PPOTrainer / ms-swift arrange it (Ziegler et al. 2019; Ouyang et al. 2022), top to
/// bottom: setup (policy, reference = adapters-off base or a frozen copy, rewards, a value model) → loop (when the
/// rollout batch is used up: one completion per prompt on the live policy, sequence scores from the rewards, per-token
/// rewards −kl_coef·(logp − ref_logp) with the score at the last token, values, GAE, whitened advantages; then each
/// optimizer step takes one shuffled mini-batch and runs the clipped policy loss on the policy and vf_coef × the
/// clipped value loss on the value model) → finish. A rollout batch is per_device_train_batch_size ×
/// gradient_accumulation_steps × num_mini_batches completions, used for num_ppo_epochs × num_mini_batches steps.
/// </summary>
/// <remarks>
/// The value model is a separate <c>*ForSequenceClassification</c> model, initialised from <c>--reward_model</c> as TRL
/// does (its head already reads the reward's scale, so the first value estimates are not noise); without a reward model
/// (plugin or HTTP rewards) it is the base model with a fresh score head. Keeping it separate leaves the policy's
/// forward pass, LoRA and checkpoints exactly as in GRPO; it is trained in full with its own AdamW at the policy's peak
/// learning rate and saved as checkpoint-N/value_model.
/// </remarks>
public static class PpoRecipe
{
    /// <summary>The value model's folder inside a checkpoint.</summary>
    public const string ValueModelFolder = "value_model";

    /// <summary>The value model's AdamW state inside <see cref="ValueModelFolder"/>, so a resumed run continues exactly.</summary>
    const string ValueOptimizerFile = "optimizer.bin";

    /// <summary>Trains until the last step or until <paramref name="cancel"/> fires.</summary>
    /// <exception cref="OspreyException">No prompts or bad options.</exception>
    public static TrainingResult Run(TrainingRun run, GrpoRun data, PpoOptions ppo, CancellationToken cancel = default)
    {
        run.Options.Validate();
        ppo.Validate();
        if (data.Prompts.Count == 0) throw new OspreyException("the training set has no prompts; check --dataset.");
        var o = run.Options;
        var gradAcc = o.ResolvedGradientAccumulationSteps;
        var miniBatch = o.BatchSize * gradAcc;
        var rolloutSize = miniBatch * ppo.NumMiniBatches;
        var stepsPerBatch = ppo.NumPpoEpochs * ppo.NumMiniBatches;

        // Setup.
        using var session = TrainingSession.Open(run);
        var model = session.Model;
        using var rewards = RewardSet.Create(data.Options, run.Load);
        using var reference = o.TrainType == TrainType.Lora && data.ReferenceModel is null ? null : LoadFrozen(data.ReferenceModel ?? run.ModelDirectory, run, "reference model");
        using var value = LoadValueModel(session, data.Options);
        var valueParameters = value.parameters().ToList();
        using var valueOptimizer = optim.AdamW(valueParameters, o.ResolvedLearningRate, o.AdamBeta1, o.AdamBeta2, weight_decay: o.WeightDecay);
        if (session.Resume is { } from && File.Exists(Path.Combine(from, ValueModelFolder, ValueOptimizerFile)))
            valueOptimizer.load_state_dict(Path.Combine(from, ValueModelFolder, ValueOptimizerFile));
        var batchesPerEpoch = (data.Prompts.Count + rolloutSize - 1) / rolloutSize;
        using var loop = TrainingLoop.Start(session, Math.Max(1, (long)batchesPerEpoch * stepsPerBatch));
        var state = session.Resume is { } resume && !o.ResumeOnlyModel
            ? PpoState.Load(resume) ?? new PpoState { Generations = loop.StartStep / stepsPerBatch, Cursor = loop.StartStep / stepsPerBatch * rolloutSize }
            : new PpoState();
        using var sampler = RolloutSampler.For(session, data, rolloutSize);
        var rollouts = new Rollouts(session, data, ppo, rewards, reference, value, sampler);

        // Loop.
        var step = loop.StartStep;
        for (; step < loop.TotalSteps; step++)
        {
            if (loop.ShouldStop(cancel)) break;
            using var stepScope = NewDisposeScope();
            PhaseTimer.Restart(model.Device);
            var clock = Stopwatch.StartNew();
            double rolloutSeconds = 0;
            if (state.Batch is null || state.NextStep >= stepsPerBatch)
            {
                rollouts.Make(state, rolloutSize);
                rolloutSeconds = clock.Elapsed.TotalSeconds;
            }
            var batch = state.Batch!;
            // Each pass over the batch shuffles it (seeded by run seed, batch and pass, so a resumed run sees the same order).
            var order = PromptOrder.Shuffled(batch.Count, unchecked(o.Seed * 7919 + (int)state.Generations * 131 + state.NextStep / ppo.NumMiniBatches));
            var mini = order.Skip(state.NextStep % ppo.NumMiniBatches * miniBatch).Take(miniBatch).Select(i => batch[i]).ToList();
            var lossSum = zeros(1, dtype: ScalarType.Float32, device: model.Device);
            var correct = zeros(1, dtype: ScalarType.Int64, device: model.Device);
            var metrics = new Dictionary<string, double>();
            for (int k = 0; k < gradAcc; k++)
            {
                var rows = mini.Skip(k * o.BatchSize).Take(o.BatchSize).ToList();
                if (rows.Count == 0) break;
                var (loss, m) = Update(session, value, rows, ppo, step, k, 1.0 / gradAcc);
                lossSum.add_(loss / gradAcc);
                foreach (var (key, v) in m) metrics[key] = metrics.GetValueOrDefault(key) + v / gradAcc;
                loop.Window.Tokens += rows.Sum(r => r.Rollout.PromptIds.Length + r.Rollout.Completion.Length);
            }
            foreach (var (key, v) in state.BatchMetrics) metrics[key] = v;
            state.NextStep++;
            metrics["time/rollout_and_scoring_seconds"] = rolloutSeconds;
            metrics["time/update_seconds"] = clock.Elapsed.TotalSeconds - rolloutSeconds;
            var done = loop.CompleteStep(step, lossSum, correct, stepTokens: 1, metrics);
            if (o.MaxGradNorm > 0) nn.utils.clip_grad_norm_(valueParameters, o.MaxGradNorm);
            valueOptimizer.step();
            valueOptimizer.zero_grad();
            loop.SaveIfDue(done, evaluated: false);
            SaveExtras(session, value, valueOptimizer, state, done);
        }

        // Finish.
        var result = loop.Finish(step);
        SaveExtras(session, value, valueOptimizer, state, step);
        return result;
    }

    /// <summary>Adds ppo_state.json and the value model to checkpoint-<paramref name="done"/> when that checkpoint was just saved.</summary>
    static void SaveExtras(TrainingSession session, CausalLM value, TorchSharp.Modules.AdamW valueOptimizer, PpoState state, long done)
    {
        var folder = Path.Combine(session.RunDirectory, $"checkpoint-{done}");
        if (!Directory.Exists(folder) || File.Exists(Path.Combine(folder, PpoState.FileName))) return;
        var valueFolder = Path.Combine(folder, ValueModelFolder);
        value.Save(valueFolder, 5L << 30);
        var path = Path.Combine(valueFolder, ValueOptimizerFile);
        valueOptimizer.save_state_dict(path + ".tmp");
        File.Move(path + ".tmp", path, overwrite: true);
        state.Save(folder);
    }

    static CausalLM LoadFrozen(string folder, TrainingRun run, string what)
    {
        var model = CausalLM.Load(folder, run.Load);
        model.eval();
        run.Log.WriteLine($"osprey: PPO {what} loaded from {folder}.");
        return model;
    }

    /// <summary>The checkpoint's value model when resuming, else the reward model (TRL), else the base with a fresh score head.</summary>
    static CausalLM LoadValueModel(TrainingSession session, GrpoOptions g)
    {
        var run = session.Run;
        CausalLM value;
        if (session.Resume is { } resume && Directory.Exists(Path.Combine(resume, ValueModelFolder)))
            value = LoadFrozen(Path.Combine(resume, ValueModelFolder), run, "value model");
        else if (g.RewardModel is { } rm)
            value = LoadFrozen(Hub.HubCache.ResolveModel(rm), run, "value model (from the reward model)");
        else
        {
            value = LoadFrozen(run.ModelDirectory, run, "value model (base model with a new score head)");
            value.AttachScoreHead(1, session.Options.Seed);
        }
        if (!value.IsRewardModel) throw new OspreyException("the PPO value model has no score head; pass a *ForSequenceClassification --reward_model (e.g. from osprey rlhf --rlhf_type rm).");
        // Trained in full, in evaluation mode (no dropout), as TRL does for the value model.
        foreach (var p in value.parameters()) p.requires_grad_(true);
        return value;
    }

    /// <summary>One micro-batch: the clipped policy loss through the policy's forward/backward, vf_coef × the clipped value loss on the value model.</summary>
    static (Tensor Loss, Dictionary<string, double> Metrics) Update(TrainingSession session, CausalLM value, List<PpoSample> rows, PpoOptions ppo, long step, int micro, double scale)
    {
        using var scope = NewDisposeScope();
        var model = session.Model;
        var grid = GrpoRecipe.Layout.Of(rows.Select(r => r.Rollout).ToList(), model.Device, overlongFilter: false);
        var old = grid.Padded(rows.Select(r => r.Logps));
        var advantages = grid.Padded(rows.Select(r => r.Advantages));
        Dictionary<string, double>? values = null;
        Tensor? policyLoss = null;
        using var forward = model.ForwardBackward(grid.Ids, grid.Labels, null, new TrainForwardOptions
        {
            Backward = true,
            LossScale = scale,
            GradientCheckpointing = session.Options.GradientCheckpointing,
            LossChunkRows = session.ChunkRows,
            DropoutSeed = PreferenceSteps.DropoutSeed(session.Options.Seed, step, micro),
            TokenObjective = tokenLogps =>
            {
                var r = PpoMath.PolicyLoss(grid.Scatter(tokenLogps), old, advantages, grid.Mask, ppo.ClipRange);
                values = new Dictionary<string, double>
                {
                    ["policy/clipfrac_avg"] = r.ClipFrac.ToDouble(),
                    ["policy/approxkl_avg"] = r.ApproxKl.ToDouble(),
                    ["val/ratio"] = r.Ratio.ToDouble(),
                };
                policyLoss = r.Loss.detach().MoveToOuterDisposeScope();
                return r.Loss;
            },
        });
        values!["policy/entropy_avg"] = PpoMath.MaskedMean(grid.Scatter(forward.TokenEntropy!), grid.Mask).ToDouble();
        values["loss/policy_avg"] = policyLoss!.ToDouble();

        var predicted = grid.Values(value.TokenScores(grid.Ids.to(value.Device)).to(model.Device));
        var v = PpoMath.ValueLoss(predicted, grid.Padded(rows.Select(r => r.Values)), grid.Padded(rows.Select(r => r.Returns)), grid.Mask, ppo.ClipRangeValue);
        (v.Loss * (ppo.VfCoef * scale)).backward();
        values["loss/value_avg"] = v.Loss.ToDouble();
        values["val/clipfrac_avg"] = v.ClipFrac.ToDouble();
        var total = policyLoss!.to_type(ScalarType.Float32).reshape(1) + ppo.VfCoef * v.Loss.detach().reshape(1);
        return (total.MoveToOuterDisposeScope(), values);
    }

    /// <summary>Makes rollout batches: prompts from the stream, one completion each on the live policy, scores, log-probs, values, GAE.</summary>
    sealed class Rollouts(TrainingSession session, GrpoRun data, PpoOptions ppo, RewardSet rewards, CausalLM? reference, CausalLM value, RolloutSampler sampler)
    {
        readonly PromptOrder _order = new(data.Prompts.Count, session.Options.Seed);

        public void Make(PpoState state, int size)
        {
            var g = data.Options;
            var model = session.Model;
            var clock = Stopwatch.StartNew();
            var prompts = _order.Take(state.Cursor, size);
            state.Cursor += size;
            var batch = sampler.Sample(data, prompts, 1, session.Options.Seed, state.Generations);
            List<float[]> logps, refs, values;
            model.eval();
            try
            {
                var rolloutSeconds = clock.Elapsed.TotalSeconds;
                state.BatchMetrics = new Dictionary<string, double>
                {
                    ["time/rollout_seconds"] = rolloutSeconds,
                    ["rollout_tokens_per_second"] = batch.Sum(r => r.Completion.Length) / Math.Max(1e-9, rolloutSeconds),
                };
                var forwardRows = ppo.LocalRolloutForwardBatchSize;
                logps = GrpoRecipe.TokenLogProbs(model, batch, session.ChunkRows, forwardRows);
                if (reference is null) model.SetAdaptersEnabled(false);
                try
                {
                    refs = GrpoRecipe.TokenLogProbs(reference ?? model, batch, session.ChunkRows, forwardRows);
                }
                finally
                {
                    if (reference is null) model.SetAdaptersEnabled(true);
                }
                values = [];
                using (no_grad())
                {
                    for (var start = 0; start < batch.Count; start += forwardRows)
                    {
                        using var scope = NewDisposeScope();
                        var part = batch.Skip(start).Take(forwardRows).ToList();
                        var grid = GrpoRecipe.Layout.Of(part, value.Device, overlongFilter: false);
                        var v = grid.Values(value.TokenScores(grid.Ids)).cpu().data<float>().ToArray();
                        for (var i = 0; i < part.Count; i++) values.Add(v.AsSpan(i * grid.Width, part[i].Completion.Length).ToArray());
                    }
                }
            }
            finally
            {
                model.train();
            }

            var inputs = batch.Select(r => new RewardInput(r.Text, data.Prompts[r.Prompt].Messages, data.Prompts[r.Prompt].Row, r.Completion.Length, r.Truncated)).ToList();
            var perFunction = rewards.Score(inputs);
            var totals = rewards.Total(perFunction);
            // TRL's missing_eos_penalty: completions cut at the length limit lose this much score.
            var scores = batch.Select((r, i) => totals[i] - (r.Truncated ? ppo.MissingEosPenalty ?? 0 : 0)).ToArray();

            using var mathScope = NewDisposeScope();
            var cpuGrid = GrpoRecipe.Layout.Of(batch, CPU, overlongFilter: false);
            var mask = cpuGrid.Mask;
            var logpGrid = cpuGrid.Padded(logps);
            var refGrid = cpuGrid.Padded(refs);
            var valueGrid = cpuGrid.Padded(values);
            var kl = (logpGrid - refGrid) * mask;
            var tokenRewards = PpoMath.Rewards(logpGrid, refGrid, tensor(scores.Select(s => (float)s).ToArray()), mask, ppo.KlCoef);
            if (ppo.WhitenRewards) tokenRewards = PpoMath.Whiten(tokenRewards, mask, shiftMean: false) * mask;
            var (advantages, returns) = PpoMath.Gae(tokenRewards, valueGrid, ppo.Gamma, ppo.Lam);
            advantages = PpoMath.Whiten(advantages, mask) * mask;
            var adv = advantages.data<float>().ToArray();
            var ret = returns.data<float>().ToArray();
            var width = cpuGrid.Width;
            state.Batch = batch.Select((r, i) => new PpoSample
            {
                Rollout = r,
                Score = scores[i],
                Logps = logps[i],
                Values = values[i],
                Advantages = adv.AsSpan(i * width, r.Completion.Length).ToArray(),
                Returns = ret.AsSpan(i * width, r.Completion.Length).ToArray(),
            }).ToList();
            state.Generations++;
            state.NextStep = 0;

            var m = state.BatchMetrics;
            for (var f = 0; f < rewards.Functions.Count; f++)
            {
                var fv = perFunction[f].Where(v => !double.IsNaN(v)).ToList();
                m[$"rewards/{rewards.Functions[f].Name}/mean"] = fv.Count == 0 ? double.NaN : fv.Average();
            }
            var klPerRow = kl.sum(1).mean().ToDouble();
            var nonScore = (-ppo.KlCoef * kl).sum(1).mean().ToDouble();
            m["reward"] = scores.Average();
            m["reward_std"] = GroupAdvantages.Std(scores);
            m["kl"] = klPerRow;
            m["objective/kl"] = klPerRow;
            m["objective/entropy"] = (-logpGrid * mask).sum(1).mean().ToDouble();
            m["objective/non_score_reward"] = nonScore;
            m["objective/rlhf_reward"] = nonScore + scores.Average();
            m["objective/scores"] = scores.Average();
            m["val/num_eos_tokens"] = batch.Count(r => !r.Truncated);
            m["completions/mean_length"] = batch.Average(r => r.Completion.Length);
            m["completions/clipped_ratio"] = batch.Count(r => r.Truncated) / (double)batch.Count;
            m["time/scoring_seconds"] = clock.Elapsed.TotalSeconds - m["time/rollout_seconds"];
        }
    }
}
