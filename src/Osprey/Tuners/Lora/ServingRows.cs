using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// Which batch rows each serving adapter applies to in the next forward passes, shared by every layer of one model.
/// Built once per <see cref="ServingLoraExtensions.SetRowAdapters"/> call: one host→device copy of a [K, B, 1, 1] mask
/// (model dtype, model device), so layers do no host work; adapters without rows in the batch have no entry and cost
/// no kernels. When every row uses the same adapter its mask is omitted (no multiply).
/// </summary>
internal sealed class ServingRows : IDisposable
{
    Tensor? _masks;
    readonly Dictionary<int, Tensor?> _active = [];

    /// <summary>The batch size the assignment was made for (0 when every row is base).</summary>
    public long Batch { get; private set; }

    /// <summary>True when some row uses a serving adapter.</summary>
    public bool Any => _active.Count > 0;

    /// <summary>
    /// True when adapter <paramref name="k"/> has rows in the batch; <paramref name="mask"/> is then its [B, 1, 1]
    /// 0/1 row mask, or null when it applies to every row.
    /// </summary>
    public bool TryGet(int k, out Tensor? mask) => _active.TryGetValue(k, out mask);

    /// <summary>Replaces the assignment: <paramref name="perRow"/>[i] is 0 (base) or an adapter number; null = all base.</summary>
    public void Set(IReadOnlyList<int>? perRow, ScalarType dtype, Device device)
    {
        Clear();
        if (perRow is null || perRow.Count == 0) return;
        var used = perRow.Where(k => k != 0).Distinct().Order().ToList();
        if (used.Count == 0) return;
        Batch = perRow.Count;
        if (used.Count == 1 && perRow.All(k => k == used[0]))
        {
            _active[used[0]] = null;
            return;
        }
        var host = new float[used.Count * perRow.Count];
        for (var j = 0; j < used.Count; j++)
            for (var i = 0; i < perRow.Count; i++)
                if (perRow[i] == used[j]) host[j * perRow.Count + i] = 1f;
        using var cpu = tensor(host, [used.Count, perRow.Count, 1, 1]);
        _masks = cpu.to(dtype, device).DetachFromDisposeScope(); // may be set inside a caller's dispose scope
        for (var j = 0; j < used.Count; j++) _active[used[j]] = _masks[j].DetachFromDisposeScope();
    }

    /// <summary>Back to all rows base.</summary>
    public void Clear()
    {
        foreach (var m in _active.Values) m?.Dispose();
        _active.Clear();
        _masks?.Dispose();
        _masks = null;
        Batch = 0;
    }

    /// <inheritdoc />
    public void Dispose() => Clear();
}
