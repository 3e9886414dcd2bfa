using Osprey.Models;
using Osprey.Models.Blocks;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// Unmerged multi-LoRA serving on a <see cref="CausalLM"/>: PEFT adapters loaded beside the base weights and chosen per
/// batch row, plugged into each adapted linear layer as its output delta (<see cref="ILinearDelta"/>).
/// </summary>
public static class ServingLoraExtensions
{
    extension(CausalLM model)
    {
        /// <summary>The serving adapters in load order: adapter number k is at index k − 1.</summary>
        public IReadOnlyList<string> ServingAdapterNames => model.FindState<ServingAdapters>()?.Names ?? [];

        /// <summary>True when serving adapters are loaded.</summary>
        public bool HasServingAdapters => model.FindState<ServingAdapters>() is { Names.Count: > 0 };

        /// <summary>
        /// Loads a PEFT LoRA adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) unmerged as
        /// serving adapter number k (1, 2, ...) and returns k. Its A [r, in] and B [out, r] are kept in the model's dtype on
        /// its device beside the base weights, which stay untouched (fused q/k/v and gate/up projections stay one matrix
        /// multiply; the adapter adds its low-rank delta to their output slices). Rows of a batch pick an adapter with
        /// <see cref="SetRowAdapters"/>. Any rank, alpha, rank_pattern/alpha_pattern, rsLoRA and target modules per adapter.
        /// </summary>
        /// <exception cref="OspreyException">
        /// The name is empty or taken, the model has a training adapter (<see cref="LoraExtensions.AttachLora"/>), or the
        /// adapter is DoRA, has modules_to_save, is a SEQ_CLS (reward model) adapter, or does not fit this model's layers.
        /// </exception>
        public int AddServingAdapter(string name, string directory)
        {
            var names = model.ServingAdapterNames;
            if (string.IsNullOrWhiteSpace(name)) throw new OspreyException($"the serving adapter from {directory} needs a non-empty name.");
            if (names.Contains(name)) throw new OspreyException($"a serving adapter named '{name}' is already loaded, so {directory} needs another name.");
            if (model.HasLora)
                throw new OspreyException($"{directory} cannot be added as a serving adapter while a training LoRA adapter is attached; serving adapters and a training adapter are mutually exclusive.");
            if (PeftAdapter.IsSequenceClassification(directory))
                throw new OspreyException($"{directory} is a SEQ_CLS (reward model) adapter, which cannot be served as a generation adapter.");
            var (options, _) = PeftAdapter.ReadConfig(directory);
            const string merge = "merge it with osprey export --merge_lora true and serve the merged folder";
            if (options.UseDora) throw new OspreyException($"{directory} is a DoRA adapter, which cannot be served unmerged; {merge}.");
            if (options.ModulesToSave.Count > 0)
                throw new OspreyException($"{directory} trains modules_to_save ({string.Join(", ", options.ModulesToSave)}) in full, which cannot be served per row; {merge}.");

            var layers = model.LinearLayers().ToDictionary(l => l.Path, l => l.Layer, StringComparer.Ordinal);
            using var file = PeftAdapter.OpenWeights(directory);
            var byName = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in file.Entries)
            {
                var key = PeftAdapter.Normalize(model, entry.Name);
                if (!key.EndsWith(".lora_A.weight", StringComparison.Ordinal) && !key.EndsWith(".lora_B.weight", StringComparison.Ordinal))
                    throw new OspreyException($"{directory} holds '{entry.Name}', which is not a LoRA A or B matrix; {merge}.");
                byName[key] = entry.Name;
            }
            var index = names.Count + 1;
            var loaded = new List<(LinearLayer Layer, ServingLora Lora)>();
            try
            {
                foreach (var (key, stored) in byName.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (!key.EndsWith(".lora_A.weight", StringComparison.Ordinal)) continue;
                    var path = key[..^".lora_A.weight".Length];
                    if (!layers.TryGetValue(path, out var layer))
                        throw new OspreyException($"{directory} adapts '{path}', which this {model.Spec.ModelType} model does not have, so the adapter was trained for a different model.");
                    PeftAdapter.EnsureTarget(model, options, path, directory);
                    if (!byName.TryGetValue(path + ".lora_B.weight", out var bStored))
                        throw new OspreyException($"{directory} has the lora_A of '{path}' but no lora_B, so the adapter file is incomplete.");
                    var a = file.Entries.First(e => e.Name == stored).Shape;
                    var b = file.Entries.First(e => e.Name == bStored).Shape;
                    var w = layer.Weight.shape;
                    var (rank, scaling) = options.For(path);
                    if (a.Length != 2 || b.Length != 2 || a[1] != w[1] || b[0] != w[0] || a[0] != b[1])
                        throw new OspreyException($"{directory}: the adapter of '{path}' (A [{string.Join(", ", a)}], B [{string.Join(", ", b)}]) does not fit its weight [{string.Join(", ", w)}], so the adapter was trained for a different model.");
                    if (a[0] != rank)
                        throw new OspreyException($"{directory}: the adapter of '{path}' has rank {a[0]} but adapter_config.json (r, rank_pattern) gives {rank}, so the config does not match the weights.");
                    using var aHost = file.ReadTensor(stored);
                    using var bHost = file.ReadTensor(bStored);
                    var lora = new ServingLora(index,
                        aHost.to(model.DType, model.Device).contiguous().DetachFromDisposeScope(),
                        bHost.to(model.DType, model.Device).contiguous().DetachFromDisposeScope(), scaling);
                    loaded.Add((layer, lora));
                }
                foreach (var key in byName.Keys)
                    if (key.EndsWith(".lora_B.weight", StringComparison.Ordinal) && !byName.ContainsKey(key[..^".lora_B.weight".Length] + ".lora_A.weight"))
                        throw new OspreyException($"{directory} has the lora_B of '{key[..^".lora_B.weight".Length]}' but no lora_A, so the adapter file is incomplete.");
                if (loaded.Count == 0) throw new OspreyException($"{directory} holds no LoRA matrices.");
            }
            catch
            {
                foreach (var (_, lora) in loaded) lora.Dispose();
                throw;
            }
            var serving = model.State<ServingAdapters>();
            foreach (var (layer, lora) in loaded)
            {
                if (!serving.Layers.TryGetValue(layer, out var set))
                {
                    set = new ServingLoraSet(serving.Rows);
                    layer.SetDelta(set);
                    serving.Layers.Add(layer, set);
                }
                set.Add(lora);
            }
            serving.Names.Add(name);
            return index;
        }

        /// <summary>
        /// Selects, for the next forward passes (prefill and decode alike, until called again), which serving adapter
        /// each batch row uses: <paramref name="perRow"/>[i] is 0 (the base model) or an adapter number from
        /// <see cref="AddServingAdapter"/>; null means every row is base, which runs exactly the base model's kernels.
        /// The assignment is built once here (one small copy to the model's device); adapters with no rows cost nothing.
        /// The input of each forward pass must then have one row per entry.
        /// </summary>
        /// <exception cref="OspreyException">A number is not 0 and not a loaded adapter.</exception>
        public void SetRowAdapters(IReadOnlyList<int>? perRow)
        {
            var count = model.ServingAdapterNames.Count;
            if (perRow is not null)
                for (var i = 0; i < perRow.Count; i++)
                    if (perRow[i] < 0 || perRow[i] > count)
                        throw new OspreyException($"row {i} asks for serving adapter {perRow[i]}, but {(count == 0 ? "none is loaded" : $"only 1..{count} are loaded")} (0 = base).");
            model.State<ServingAdapters>().Rows.Set(perRow, model.DType, model.Device);
        }
    }
}
