using Osprey.Cli.Args;
using Osprey.Training.Preference;

namespace Osprey.Cli.Commands;

/// <summary>
/// <c>osprey rlhf</c>: preference training (DPO, SimPO, CPO, ORPO on chosen/rejected pairs; KTO on labelled rows), with every flag of
/// <c>osprey sft</c> (LoRA or full, batches, schedule, checkpoints, resume).
/// </summary>
internal sealed class RlhfCommand : ICommand
{
    public string Name => "rlhf";

    public string Summary => "Preference training: DPO, SimPO, CPO, ORPO and reward models on chosen/rejected pairs, KTO on labelled rows.";

    public string Usage =>
        "  --rlhf_type T            dpo | simpo | cpo | orpo | kto | rm (reward model: a scalar head, saved for\n" +
        "                           transformers' AutoModelForSequenceClassification with num_labels 1).\n" +
        "  --beta X                 Preference strength (default 0.1; SimPO 2.0).\n" +
        "  --loss_type S            DPO: sigmoid (default) | hinge | ipo | robust.\n" +
        "  --label_smoothing X      DPO: conservative/robust label noise (default 0).\n" +
        "  --rpo_alpha X            DPO: add X times the chosen responses' NLL (default off).\n" +
        "  --simpo_gamma X          SimPO target reward margin (default 1.0).\n" +
        "  --cpo_alpha X            CPO/SimPO: weight of the chosen NLL (default 1.0; SimPO 0 unless given).\n" +
        "  --desirable_weight X     KTO: weight of desirable examples (default 1.0).  --undesirable_weight X (default 1.0).\n" +
        "  --ref_adapters DIR...    LoRA adapters merged into the reference (a separate frozen copy), e.g. the SFT adapter.\n" +
        "  --center_rewards_coefficient X  RM: pull mean rewards toward 0 (default 0).\n" +
        "  --ref_model DIR|ID       DPO/KTO reference model (default: LoRA uses the base weights with adapters off;\n" +
        "                           full training loads the base model a second time).\n" +
        "  --precompute_ref_log_probs BOOL  DPO: score all pairs with the reference once before training, then free a\n" +
        "                           separate reference copy (default false).\n" +
        "Data: rows with chosen and rejected responses (\"prompt\"/\"chosen\"/\"rejected\", or messages plus\n" +
        "\"rejected_response\"); for KTO, messages plus \"label\" true/false (at least 2 per micro-batch). Loss on the\n" +
        "last response (--loss_scale last_round). Every osprey sft flag applies:\n\n" +
        SftCommand.Help(pretraining: false);

    public int Run(OptionReader options, TextWriter stdout, TextWriter stderr)
    {
        var type = options.RequiredString("rlhf_type").ToLowerInvariant();
        var loss = new PreferenceLossOptions
        {
            RlhfType = type,
            Beta = options.Double("beta", type == "simpo" ? 2.0 : 0.1),
            LossType = options.String("loss_type", "sigmoid"),
            LabelSmoothing = options.Double("label_smoothing", 0),
            RpoAlpha = options.Double("rpo_alpha", 0),
            SimpoGamma = options.Double("simpo_gamma", 1.0),
            CpoAlpha = options.Double("cpo_alpha", type == "simpo" ? 0 : 1.0),
            DesirableWeight = options.Double("desirable_weight", 1.0),
            UndesirableWeight = options.Double("undesirable_weight", 1.0),
            CenterRewardsCoefficient = options.Double("center_rewards_coefficient", 0),
        };
        var referenceModel = options.String("ref_model");
        var referenceAdapters = options.List("ref_adapters");
        var precompute = options.Bool("precompute_ref_log_probs", false);
        if (precompute && type != "dpo")
            throw new UserError($"--precompute_ref_log_probs applies to dpo only: {(type == "kto" ? "KTO's KL estimate pairs examples within each micro-batch, so its reference scores cannot be computed ahead" : $"{type} uses no reference model")}; drop the flag.");
        foreach (var a in referenceAdapters)
            if (!Tuners.Lora.PeftAdapter.IsAdapter(a)) throw new UserError($"--ref_adapters {a} has no adapter_config.json; pass LoRA checkpoint folders or PEFT adapters.");
        try { loss.Validate(); }
        catch (OspreyException e) { throw new UserError(e.Message, e); }
        return SftCommand.Run(options, stdout, stderr, "rlhf", loss, referenceModel, referenceAdapters, precompute);
    }
}
