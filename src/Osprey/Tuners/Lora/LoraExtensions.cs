using Osprey.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// Training LoRA (and DoRA, rsLoRA) on a <see cref="CausalLM"/>: the adapters are put on the model's linear layers from
/// here, through the layers' adapter seam, and recorded with the model; the model itself knows nothing of LoRA.
/// </summary>
public static class LoraExtensions
{
    extension(CausalLM model)
    {
        /// <summary>
        /// Puts a LoRA adapter on every linear layer <paramref name="options"/> targets (PEFT's matching rules),
        /// freshly initialised from <paramref name="seed"/> (B = 0, so the model is unchanged until trained). Returns
        /// the adapted module paths.
        /// </summary>
        /// <exception cref="OspreyException">No linear layer matches, or the model already has adapters.</exception>
        public IReadOnlyList<string> AttachLora(LoraOptions options, long seed = 0)
        {
            options.Validate();
            var state = model.State<LoraState>();
            if (state.Layers.Count > 0) throw new OspreyException("the model already has a LoRA adapter; merge it first (osprey export --merge_lora true) to train another on top.");
            if (model.HasServingAdapters) throw new OspreyException("the model has serving adapters (AddServingAdapter); serving adapters and a training LoRA adapter are mutually exclusive, so load a fresh model to train.");
            var all = model.LinearLayers().ToList();
            var targets = all.Where(l => LoraTargets.IsTarget(options, l.Path)).ToList();
            // A regex that names none of Osprey's paths may name transformers 5's module paths of a vision-language model
            // (an adapter_config.json Osprey or PEFT wrote, or ms-swift style --target_regex): PeftModulePaths.
            if (targets.Count == 0 && options.TargetRegex is not null && PeftModulePaths.Of(model) is var layout and not PeftModulePaths.Layout.Text)
                targets = all.Where(l => LoraTargets.IsTarget(options, PeftModulePaths.ToPeft(layout, l.Path))).ToList();
            if (targets.Count == 0)
            {
                var names = string.Join(", ", all.Select(l => l.Path.Split('.')[^1]).Distinct());
                var asked = options.TargetRegex is { } r ? $"--target_regex '{r}'" : $"--target_modules {string.Join(" ", options.TargetModules)}";
                throw new OspreyException($"{asked} matches no linear layer of this {model.Spec.ModelType} model; its linear layers are named {names}.");
            }
            using var init = new Generator((ulong)seed, CPU);
            foreach (var (path, layer) in targets)
            {
                var (rank, scaling) = options.For(path);
                state.Layers[path] = LoraWeights.AttachTo(layer, new LoraLayerSettings(rank, scaling, options.Dropout, options.UseDora), init, () => model.DropoutGenerator);
            }
            // Adapted parts of one stacked projection read the same input: their down-projections become one product.
            foreach (var group in LoraMergedCopy.FusedGroups(model))
            {
                var members = group.Parts.Select(p => p.Adapter).OfType<LoraWeights>().ToList();
                if (members.Count > 1) state.SharedInputs.Add(new LoraSharedInput(members));
                // Frozen parts keep their one stacked base product: the adapters are applied to its output at once.
                if (members.Count > 0 && group.Parts.All(p => p.Adapter is null or LoraWeights))
                {
                    var stacked = new LoraStackedProjection([.. group.Parts.Select(p => (p.Weight.shape[0], p.Adapter as LoraWeights))]);
                    group.Stacked = stacked;
                    state.StackedProjections.Add(stacked);
                }
            }
            return targets.Select(t => t.Path).ToList();
        }

        /// <summary>True when LoRA adapters are attached.</summary>
        public bool HasLora => model.FindState<LoraState>() is { Layers.Count: > 0 };

        /// <summary>
        /// Switches every attached adapter off or on (off: the base model's outputs, e.g. for a reference model). Tensors
        /// trained in full through modules_to_save are not switched: they replace the base ones.
        /// </summary>
        public void SetAdaptersEnabled(bool enabled)
        {
            if (model.FindState<LoraState>() is not { } state) return;
            foreach (var l in state.Layers.Values) l.Disabled = !enabled;
        }

        /// <summary>
        /// The adapters' trainable tensors, named as in the model state dict (PEFT's saved keys without
        /// <c>base_model.model.</c>): <c>model.layers.0.self_attn.q_proj.lora_A.weight</c>, ...
        /// </summary>
        public IReadOnlyList<(string Name, Parameter Tensor)> LoraParameters() =>
            model.FindState<LoraState>() is { } state
                ? state.Layers.SelectMany(kv => kv.Value.Parameters().Select(p => (kv.Key + "." + p.Name, p.Tensor))).ToList()
                : [];
    }

    extension(CausalLM)
    {
        /// <summary>True for state-dict keys that belong to a LoRA adapter rather than the base model.</summary>
        public static bool IsAdapterKey(string name) =>
            name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal) ||
            name.EndsWith(".lora_magnitude_vector", StringComparison.Ordinal);
    }
}
