using System.Text.Json;

namespace Osprey.Training;

/// <summary>
/// ms-swift's <c>--deepspeed</c> and <c>--fsdp</c> mapped onto Osprey's own sharding (there is no DeepSpeed here):
/// <c>zero0</c> is data parallel, <c>zero1</c> and <c>zero2</c> shard optimizer state and gradients, <c>zero3</c>
/// also the weights, <c>*_offload</c> keeps the optimizer state in (pinned) CPU memory. A DeepSpeed JSON file gives
/// its <c>zero_optimization.stage</c> and <c>offload_optimizer.device</c>; FSDP's <c>full_shard</c> is ZeRO-3,
/// <c>shard_grad_op</c> ZeRO-2, and the word <c>offload</c> offloads.
/// </summary>
public sealed record ShardingPlan(ZeroStage Stage, bool Offload)
{
    /// <summary>Data parallel, nothing sharded.</summary>
    public static ShardingPlan None { get; } = new(ZeroStage.None, false);

    /// <summary>The plan of <paramref name="deepspeed"/> or <paramref name="fsdp"/> (at most one may be given).</summary>
    /// <exception cref="OspreyException">An unknown name, an unreadable JSON file, or both flags.</exception>
    public static ShardingPlan Resolve(string? deepspeed, string? fsdp)
    {
        if (deepspeed is not null && fsdp is not null) throw new OspreyException("--deepspeed and --fsdp both choose how to shard; pass one of them.");
        if (fsdp is not null) return FromFsdp(fsdp);
        if (deepspeed is null) return None;
        var name = deepspeed.Trim().ToLowerInvariant();
        switch (name)
        {
            case "zero0": case "default": return None;
            // ZeRO-1 shards only the optimizer state; sharding the gradients too changes memory, not the results.
            case "zero1": case "zero2": return new(ZeroStage.Zero2, false);
            case "zero1_offload": case "zero2_offload": return new(ZeroStage.Zero2, true);
            case "zero3": return new(ZeroStage.Zero3, false);
            case "zero3_offload": return new(ZeroStage.Zero3, true);
        }
        if (!File.Exists(deepspeed))
            throw new OspreyException($"--deepspeed '{deepspeed}' is neither zero0, zero1, zero2, zero2_offload, zero3, zero3_offload nor an existing DeepSpeed JSON file.");
        return FromDeepSpeedJson(deepspeed);
    }

    static ShardingPlan FromDeepSpeedJson(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new OspreyException($"--deepspeed {path}: line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message}); fix the file or pass zero2/zero3.", e);
        }
        using (doc)
        {
            if (!doc.RootElement.TryGetProperty("zero_optimization", out var zero) || zero.ValueKind != JsonValueKind.Object)
                return None;
            var stage = zero.TryGetProperty("stage", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt32(out var n) ? n
                : throw new OspreyException($"--deepspeed {path}: zero_optimization.stage must be a number 0 … 3.");
            var offload = zero.TryGetProperty("offload_optimizer", out var o) && o.ValueKind == JsonValueKind.Object
                && o.TryGetProperty("device", out var d) && d.ValueKind == JsonValueKind.String && d.GetString() == "cpu";
            return stage switch
            {
                0 => None,
                1 or 2 => new(ZeroStage.Zero2, offload),
                3 => new(ZeroStage.Zero3, offload),
                _ => throw new OspreyException($"--deepspeed {path}: zero_optimization.stage {stage} is not 0 … 3."),
            };
        }
    }

    static ShardingPlan FromFsdp(string fsdp)
    {
        var words = fsdp.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries).Select(w => w.ToLowerInvariant()).ToList();
        var offload = words.Contains("offload");
        if (words.Contains("full_shard") || words.Contains("hybrid_shard")) return new(ZeroStage.Zero3, offload);
        if (words.Contains("shard_grad_op") || words.Contains("hybrid_shard_zero2")) return new(ZeroStage.Zero2, offload);
        if (words.Contains("no_shard")) return new(ZeroStage.None, offload);
        throw new OspreyException($"--fsdp '{fsdp}' names no sharding strategy; use full_shard (ZeRO-3), shard_grad_op (ZeRO-2) or no_shard, optionally with offload.");
    }
}
