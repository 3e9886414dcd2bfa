using Osprey.Inference;
using Osprey.Models;
using Osprey.Runtime;
using Osprey.Serving;
using Osprey.Tokenization;
using Osprey.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Grpo;

/// <summary>
/// Samples GRPO and PPO rollouts on the live policy. Normally through the continuous-batching
/// <see cref="InferenceEngine"/> in this process, started once over the training model itself: the engine reads the
/// very tensors the optimizer updates in place (LoRA's A and B, or every weight in full training), so nothing is
/// copied per step and its captured CUDA graphs stay valid. With LoRA the engine reads, by default, a merged copy of the
/// adapted weights (<see cref="LoraMergedCopy"/>) recomputed in place from the live adapters before each generation
/// batch: unmerged adapters cost two extra matrix multiplies per projection and the stacked q/k/v and gate/up
/// multiplies. The model is put in evaluation mode for the rollouts (no dropout; the engine's thread runs without
/// autograd) and back in training mode after.
/// <see cref="TokenGenerator"/> on the same model is the fallback where the engine cannot be used (see
/// <see cref="Create"/>).
/// </summary>
internal sealed class RolloutSampler : IDisposable
{
    readonly CausalLM _model;
    readonly InferenceEngine? _engine;
    readonly LoraMergedCopy? _merged;

    /// <summary>Where <c>OSPREY_PROFILE=1</c> writes each generation batch's time by engine phase (null: nowhere).</summary>
    internal TextWriter? ProfileLog { get; set; }

    RolloutSampler(CausalLM model, InferenceEngine? engine, string description, LoraMergedCopy? merged = null)
    {
        _model = model;
        _engine = engine;
        _merged = merged;
        Description = description;
    }

    /// <summary>True when the engine reads a merged copy of the LoRA-adapted weights.</summary>
    public bool Merged => _merged is not null;

    /// <summary>The engine the rollouts run on, or null when they run on <see cref="TokenGenerator"/>.</summary>
    public InferenceEngine? Engine => _engine;

    /// <summary>One line saying which sampler runs and, for the fallback, why.</summary>
    public string Description { get; }

    /// <summary>
    /// Starts the engine over <paramref name="model"/> for up to <paramref name="maxRequests"/> rollouts per call of up
    /// to <paramref name="maxModelLen"/> tokens (prompt plus completion), its KV cache held within
    /// <paramref name="memoryFraction"/> of the GPU's memory (on the CPU only by the rollouts it needs). Falls back to
    /// <see cref="TokenGenerator"/> when <paramref name="engineOff"/> gives a reason (e.g. ZeRO-3, whose weights are
    /// released between layers), without a tokenizer, when not even one request fits the budget, or when the engine
    /// cannot start. Call after the optimizer has built its buffers (<see cref="AdamW.Prepare"/>): the engine's graphs
    /// capture the parameters' storage. With <paramref name="mergeLora"/> and LoRA adapters the engine reads a merged
    /// copy of the adapted weights (where <see cref="LoraMergedCopy.TryCreate"/> can make one; the description says why not).
    /// </summary>
    public static RolloutSampler Create(CausalLM model, Tokenizer? tokenizer, int maxRequests, int maxModelLen, double memoryFraction, string? engineOff = null, bool mergeLora = true)
    {
        if (engineOff is not null) return Fallback(model, engineOff);
        if (tokenizer is null) return Fallback(model, "no tokenizer was given to turn the engine's tokens into text");
        var spec = model.Spec;
        var bytesPerToken = 2L * spec.Layers.Count * spec.NumKvHeads * spec.HeadDim * (model.DType == ScalarType.Float32 ? 4 : 2);
        var slots = Math.Max(1, maxRequests);
        if (model.Device.type == DeviceType.CUDA && Nvml.Devices() is { Count: > 0 } gpus)
        {
            // NVML numbers GPUs physically, CUDA after CUDA_VISIBLE_DEVICES: the cards of one host are alike in practice,
            // and the figure only caps the cache.
            var total = gpus[Math.Clamp(model.Device.index, 0, gpus.Count - 1)].TotalBytes;
            // The engine keeps one staging row beyond its running rows.
            var fit = (long)(memoryFraction * total) / (bytesPerToken * maxModelLen) - 1;
            if (fit < 1)
                return Fallback(model, $"--rollout_memory_fraction {memoryFraction} of the GPU's {total / 1073741824.0:F1} GiB holds no KV cache of {maxModelLen} tokens ({bytesPerToken * maxModelLen * 2 / 1048576.0:F0} MiB with the staging row); raise it");
            slots = (int)Math.Min(slots, fit);
        }
        LoraMergedCopy? merged = null;
        var lora = "";
        if (model.HasLora)
        {
            string? why = "--rollout_merge_lora false";
            merged = mergeLora ? LoraMergedCopy.TryCreate(model, out why) : null;
            lora = merged is not null
                ? $"; LoRA merged into a copy of the adapted weights ({merged.Bytes / 1048576.0:F0} MiB), refreshed before each generation batch"
                : $"; LoRA applied unmerged ({why})";
        }
        try
        {
            var engine = new InferenceEngine(model, tokenizer, new EngineOptions { MaxBatchSize = slots, MaxModelLen = maxModelLen, MaxQueue = Math.Max(1, maxRequests) });
            var graphs = engine.GraphsOffReason is null ? "CUDA graphs on" : $"CUDA graphs off: {engine.GraphsOffReason}";
            return new RolloutSampler(model, engine,
                $"rollouts run on the in-process serving engine over the live policy weights ({slots} at a time, {maxModelLen} tokens each, KV cache {bytesPerToken * maxModelLen * (slots + 1) / 1048576.0:F1} MiB; {graphs}{lora}).", merged);
        }
        catch (OspreyException e)
        {
            merged?.Dispose();
            return Fallback(model, e.Message.TrimEnd('.'));
        }
    }

    static RolloutSampler Fallback(CausalLM model, string why) =>
        new(model, null, $"rollouts run on TokenGenerator over the training model, not the serving engine: {why}.");

    /// <summary>
    /// One completion per prompt (repeat a prompt for several), in evaluation mode. Each rollout draws from its own
    /// random stream, seeded from <paramref name="sampling"/>'s seed and the rollout's index, so a resumed run samples
    /// the same tokens; greedy sampling (temperature 0) gives what <see cref="TokenGenerator"/> gives.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingParams sampling)
    {
        if (prompts.Count == 0) return [];
        var training = _model.training;
        _model.eval();
        try
        {
            if (_engine is null) return new TokenGenerator(_model).Generate(prompts, sampling);
            PhaseTimer.Restart(_model.Device);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // The adapters changed since the last batch (an optimizer step): fold them in again, in place.
            _merged?.Refresh();
            PhaseTimer.Mark(_model.Device, "rollout: merge LoRA into the copy");
            var mergeMs = clock.Elapsed.TotalMilliseconds;
            var stepsBefore = _engine.DecodeSteps;
            using var merged = _merged?.Use();
            var requests = prompts.Select((p, i) => new EngineRequest(p, sampling with { Seed = sampling.Seed is long s ? RequestSeed(s, i) : null })).ToList();
            var results = _engine.GenerateAllAsync(requests).GetAwaiter().GetResult();
            if (PhaseTimer.Enabled && ProfileLog is { } log)
            {
                // OSPREY_PROFILE=1: the engine thread's phases for this batch, per decode step (each mark synchronises).
                var steps = Math.Max(1, _engine.DecodeSteps - stepsBefore);
                var ms = clock.Elapsed.TotalMilliseconds;
                log.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"profile, rollouts: {requests.Count} requests, {results.Sum(r => r.Tokens.Count)} tokens, {steps} decode steps, {ms:F0} ms ({mergeMs:F1} ms merging LoRA; {_engine.GraphsOffReason ?? $"CUDA graphs on, {_engine.GraphCount} captured"}); ms per decode step:"));
                foreach (var (phase, total) in PhaseTimer.TakeTotals().OrderByDescending(p => p.Value))
                    log.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {total / steps,8:F3}  {phase}"));
            }
            return results.Select(r => new GenerationResult(r.Tokens.Select(t => t.TokenId).ToArray(), r.Reason)).ToArray();
        }
        finally
        {
            if (training) _model.train();
        }
    }

    /// <summary>
    /// <paramref name="perPrompt"/> rollouts of each of <paramref name="prompts"/> (indices into the run's prompts), with
    /// <see cref="Sampling"/> of generation batch <paramref name="generation"/> and resampling round <paramref name="round"/>.
    /// </summary>
    public List<Rollout> Sample(GrpoRun data, IReadOnlyList<int> prompts, int perPrompt, int seed, long generation, int round = 0)
    {
        var ids = prompts.SelectMany(p => Enumerable.Repeat((IReadOnlyList<int>)data.Prompts[p].Ids, perPrompt)).ToList();
        var results = Generate(ids, Sampling(data, seed, generation, round));
        return results.Select((r, i) => new Rollout
        {
            Prompt = prompts[i / perPrompt],
            PromptIds = data.Prompts[prompts[i / perPrompt]].Ids,
            Completion = r.Tokens.ToArray(),
            Text = data.Decode(r.Tokens),
            Truncated = r.Reason == FinishReason.Length,
        }).ToList();
    }

    /// <summary>
    /// The rollouts' sampling: the model's defaults (stop ids, pad id) with the GRPO flags, seeded per (run seed,
    /// generation batch, resampling round) so a resumed run samples the same tokens.
    /// </summary>
    public static SamplingParams Sampling(GrpoRun data, int seed, long generation, int round = 0)
    {
        var g = data.Options;
        return data.Sampling with
        {
            MaxTokens = g.MaxCompletionLength,
            DoSample = true,
            Temperature = g.Temperature,
            TopP = g.TopP,
            TopK = g.TopK,
            RepetitionPenalty = g.RepetitionPenalty,
            Seed = unchecked(seed * 1_000_003L + generation * 131 + round),
        };
    }

    /// <summary>
    /// The sampler of a GRPO or PPO run over <paramref name="session"/>'s model, sized for
    /// <paramref name="maxRequests"/> rollouts per generation batch and the run's longest prompt.
    /// </summary>
    public static RolloutSampler For(TrainingSession session, GrpoRun data, int maxRequests)
    {
        var longest = data.Prompts.Count == 0 ? 1 : data.Prompts.Max(p => p.Ids.Length);
        var engineOff = session.Options.Sharding.Stage == ZeroStage.Zero3
            ? "ZeRO-3 releases the trained weights between layers, which the engine's decode steps cannot gather" : null;
        // The optimizer moves LoRA matrices into its flat buffers once: do it before the engine captures their storage.
        session.Optimizer.Prepare();
        var sampler = Create(session.Model, data.Tokenizer, maxRequests, longest + data.Options.MaxCompletionLength, data.Options.RolloutMemoryFraction, engineOff, data.Options.RolloutMergeLora);
        session.Run.Log.WriteLine($"osprey: {sampler.Description}");
        sampler.ProfileLog = session.Run.Log;
        return sampler;
    }

    /// <summary>Request <paramref name="index"/>'s seed: SplitMix64 of the batch seed and the index, so streams of neighbouring batches never coincide.</summary>
    internal static long RequestSeed(long batchSeed, int index)
    {
        unchecked
        {
            var z = (ulong)batchSeed + (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)((z ^ (z >> 31)) >> 1); // non-negative: the engine seeds a generator with it
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _engine?.Dispose();
        _merged?.Dispose();
    }
}
