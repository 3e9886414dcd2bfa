using static TorchSharp.torch;

namespace Osprey.Tuners.Lora;

/// <summary>
/// The LoRA adapters of projections that read the same input (q/k/v, gate/up: the parts of one stacked projection of the
/// model) computing their down-projections as one matrix multiply: x [A₁; A₂; A₃]ᵀ, split into the members' x Aᵢᵀ. Each
/// member then adds s·(x Aᵢᵀ) Bᵢᵀ to its own base output as before, so only the A side changes: one product (and, in
/// backward, one product for the input's gradient and one for the stacked A's) instead of one per member. The stacked A
/// is a <c>cat</c> of the members' own parameters, so autograd splits its gradient back into each <c>lora_A.weight</c>;
/// optimizers, saving, merging and the rollouts' merged copy see the same parameters as without the group.
/// </summary>
/// <remarks>
/// Exact only where every member's A reads x itself: no dropout (<c>lora_dropout</c> 0, or the layer not training). With
/// dropout in training PEFT draws an independent mask per module, so each member then takes its own product from its own
/// mask, exactly as without the group. Ranks may differ (the A's are stacked by rows; no padding), and rsLoRA/DoRA only
/// change what a member does with its slice. The model calls the members one after another with the same input tensor;
/// the first call computes the stacked product and keeps it until every member has taken its slice (a call with another
/// input, or a member asking twice, computes it afresh), so a caller that runs only some members stays correct.
/// <c>OSPREY_FUSED_LORA=0</c> turns the groups off (each member takes its own product), for comparison.
/// </remarks>
internal sealed class LoraSharedInput
{
    /// <summary>Whether new groups share the product: on unless <c>OSPREY_FUSED_LORA=0</c>.</summary>
    internal static bool DefaultEnabled { get; set; } = Environment.GetEnvironmentVariable("OSPREY_FUSED_LORA") != "0";

    readonly LoraWeights[] _members;
    readonly long[] _ranks;
    readonly bool[] _taken;
    Tensor? _input;     // the input the pieces were computed from (held only to compare identity)
    bool _withGrad;     // whether autograd recorded them
    Tensor[]? _pieces;  // x Aᵢᵀ per member, [rows, rᵢ]

    /// <summary>Makes <paramref name="members"/> (at least two adapters on projections reading one input) a group.</summary>
    public LoraSharedInput(IReadOnlyList<LoraWeights> members)
    {
        if (members.Count < 2) throw new ArgumentException("a shared-input group needs at least two adapters", nameof(members));
        _members = [.. members];
        _ranks = [.. members.Select(m => (long)m.Settings.Rank)];
        _taken = new bool[members.Count];
        for (var i = 0; i < _members.Length; i++) _members[i].JoinGroup(this, i);
    }

    /// <summary>Whether the members share one product (off: each computes its own, the path the group replaces).</summary>
    public bool Enabled { get; set; } = DefaultEnabled;

    /// <summary>The adapters in stacking order.</summary>
    public IReadOnlyList<LoraWeights> Members => _members;

    /// <summary>Stacked products computed so far (one serves every member of one forward pass).</summary>
    public long StackedProducts { get; private set; }

    /// <summary>Member calls that took their own product instead (group off, dropout in training, an adapter switched off).</summary>
    public long SeparateProducts { get; private set; }

    /// <summary>
    /// Member <paramref name="index"/>'s x Aᵢᵀ as [rows, rᵢ] (rows = every position of x), from the group's one product;
    /// null when the member must compute its own (the product would not be exact for it, or the group is off).
    /// </summary>
    internal Tensor? Down(int index, Tensor x, bool training)
    {
        if (!Enabled || _members.Any(m => m.Disabled || (training && m.Settings.Dropout > 0)))
        {
            SeparateProducts++;
            Forget();
            return null;
        }
        var grad = is_grad_enabled();
        if (_pieces is null || !ReferenceEquals(_input, x) || _withGrad != grad || _taken[index])
        {
            Forget();
            var dt = x.dtype;
            var stacked = cat(_members.Select(m => (Tensor)m.A.Weight).ToList(), 0);
            if (stacked.dtype != dt) stacked = stacked.to_type(dt);
            var down = nn.functional.linear(x.reshape(-1, x.shape[^1]), stacked);
            _pieces = down.split(_ranks, 1);
            _input = x;
            _withGrad = grad;
            StackedProducts++;
        }
        _taken[index] = true;
        var piece = _pieces[index];
        if (_taken.All(t => t)) Forget(); // every member has its slice: hold nothing past this block
        return piece;
    }

    void Forget()
    {
        _pieces = null;
        _input = null;
        Array.Clear(_taken);
    }
}
