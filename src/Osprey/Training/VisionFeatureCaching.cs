using Osprey.Models;

namespace Osprey.Training;

/// <summary>
/// Decides when a run may reuse a vision tower's features (<see cref="VisionFeatureCache"/>) and attaches the cache:
/// when no parameter of the tower or the aligner trains and no adapter sits on them (--freeze_vit true and
/// --freeze_aligner true, the defaults, with LoRA targets outside the tower), an image's features are the same at
/// every step, so it goes through the tower once. The features are taken after the aligner (Qwen2-VL's patch merger, a
/// LLaVA's projector and LLaVA-NeXT's image_newline rows), so a trainable aligner turns the cache off as a trainable
/// tower does. The reference model of a preference run
/// shares the policy's cache when it is the policy itself (LoRA, adapters off) or a copy of the same folder with the
/// same frozen tower; otherwise it gets its own.
/// </summary>
internal sealed class VisionFeatureCaching : IDisposable
{
    /// <summary>Host memory the features of one cache may take (least recently used go first beyond it): about
    /// 300 images of a 7B Qwen2-VL at 1024×768 in bfloat16.</summary>
    public const long BudgetBytes = 2L << 30;

    readonly List<VisionFeatureCache> _caches = [];
    readonly List<CausalLM> _models = [];

    VisionFeatureCaching() { }

    /// <summary>
    /// Attaches caches to <paramref name="model"/> and <paramref name="reference"/> where their towers are fixed;
    /// <paramref name="referenceIsBase"/>: the reference was loaded from the policy's own folder with nothing merged
    /// into it (its tower's weights are the policy's while the policy's tower is frozen).
    /// </summary>
    public static VisionFeatureCaching Attach(CausalLM model, CausalLM? reference, bool referenceIsBase, TextWriter log)
    {
        var caching = new VisionFeatureCaching();
        if (!model.IsVisionLanguage) return caching;
        VisionFeatureCache? policyCache = null;
        if (Fixed(model))
        {
            policyCache = caching.Add(model, new VisionFeatureCache(BudgetBytes));
            log.WriteLine($"osprey: the vision tower and aligner are frozen, so each image goes through them once and its features are reused (up to {BudgetBytes >> 20} MiB in memory).");
        }
        if (reference is { IsVisionLanguage: true } && Fixed(reference))
            caching.Add(reference, referenceIsBase && policyCache is not null ? policyCache : new VisionFeatureCache(BudgetBytes));
        return caching;
    }

    /// <summary>Whether no parameter of the tower or the aligner trains and no adapter is attached there.</summary>
    internal static bool Fixed(CausalLM model) =>
        !model.named_parameters().Any(p => CausalLM.IsVisionName(p.name) && p.parameter.requires_grad)
        && !model.AdapterKeys().Any(CausalLM.IsVisionName);

    VisionFeatureCache Add(CausalLM model, VisionFeatureCache cache)
    {
        model.FeatureCache = cache;
        _models.Add(model);
        if (!_caches.Contains(cache)) _caches.Add(cache);
        return cache;
    }

    /// <summary>
    /// One line for the run's log: <paramref name="passes"/> images through the tower(s) (the towers' own count,
    /// <see cref="CausalLM.VisionTowerImages"/>) and the images served from the cache.
    /// </summary>
    public void Report(CausalLM model, long passes, TextWriter log)
    {
        if (!model.IsVisionLanguage) return;
        log.WriteLine($"osprey: vision tower: {passes} image passes, {_caches.Sum(c => c.Hits)} images served from the feature cache.");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var m in _models) m.FeatureCache = null;
        foreach (var c in _caches) c.Dispose();
        _models.Clear();
        _caches.Clear();
    }
}
