using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Preference;

/// <summary>
/// The preference-optimisation objectives <c>swift rlhf</c> trains with, on per-sample sequence log-probabilities.
/// Inputs are float32 tensors of shape [B]; "sum" inputs are a response's summed token log-probabilities, "avg" ones
/// their per-token mean, and an NLL is the mean token negative log-likelihood of the chosen response. Each loss is the
/// batch mean, differentiable with respect to every input it uses (the KTO KL estimate excepted: TRL detaches it);
/// metrics are detached batch means named as TRL logs them. The formulas follow the papers as TRL implements them.
/// </summary>
public static class PreferenceLosses
{
    /// <summary>
    /// Direct Preference Optimization on summed log-probabilities of the policy and a frozen reference. With
    /// z = (π_c − π_r) − (ref_c − ref_r), β = <see cref="PreferenceLossOptions.Beta"/>, ε = <see cref="PreferenceLossOptions.LabelSmoothing"/>:
    /// sigmoid: −(1−ε)·logσ(βz) − ε·logσ(−βz) (Rafailov et al. 2023, DPO Eq. 7; conservative DPO, Mitchell 2023);
    /// robust: (−(1−ε)·logσ(βz) + ε·logσ(−βz)) / (1−2ε) (Chowdhury et al. 2024, rDPO);
    /// hinge: max(0, 1 − βz) (SLiC, Zhao et al. 2023); ipo: (z − 1/(2β))² (Azar et al. 2023, IPO Eq. 17) —
    /// all as TRL's <c>DPOTrainer.dpo_loss</c>. RPO (Pang et al. 2024; TRL <c>rpo_alpha</c>) adds α·mean(nll_c) when
    /// <see cref="PreferenceLossOptions.RpoAlpha"/> &gt; 0. Rewards: β(π_c − ref_c), β(π_r − ref_r).
    /// </summary>
    /// <param name="policyChosen">Policy log-probability sums of the chosen responses [B].</param>
    /// <param name="policyRejected">Policy log-probability sums of the rejected responses [B].</param>
    /// <param name="refChosen">Reference log-probability sums of the chosen responses [B].</param>
    /// <param name="refRejected">Reference log-probability sums of the rejected responses [B].</param>
    /// <param name="chosenNll">Per-sample mean token NLL of the chosen responses [B]; required when RPO is on.</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult Dpo(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected, Tensor? chosenNll, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(policyChosen, policyRejected, refChosen, refRejected, chosenNll);
        if (o.RpoAlpha > 0 && chosenNll is null) throw new ArgumentException("--rpo_alpha needs the chosen responses' NLL.", nameof(chosenNll));
        using var scope = NewDisposeScope();
        var beta = o.ResolvedBeta;
        var eps = o.LabelSmoothing;
        var z = (policyChosen - policyRejected) - (refChosen - refRejected);
        var losses = o.ResolvedLossType switch
        {
            "sigmoid" => -nn.functional.logsigmoid(z * beta) * (1 - eps) - nn.functional.logsigmoid(z * -beta) * eps,
            "robust" => (-nn.functional.logsigmoid(z * beta) * (1 - eps) + nn.functional.logsigmoid(z * -beta) * eps) / (1 - 2 * eps),
            "hinge" => nn.functional.relu(1 - z * beta),
            "ipo" => (z - 1 / (2 * beta)).square(),
            _ => throw new OspreyException($"--loss_type for dpo must be one of sigmoid, hinge, ipo, robust (got '{o.ResolvedLossType}')."),
        };
        var loss = losses.mean();
        if (o.RpoAlpha > 0) loss = loss + chosenNll!.mean() * o.RpoAlpha;
        var metrics = PairMetrics((policyChosen - refChosen).detach() * beta, (policyRejected - refRejected).detach() * beta, policyChosen, policyRejected, chosenNll);
        return Finish(scope, loss, metrics);
    }

    /// <summary>
    /// SimPO on average log-probabilities, reference-free: −(1−ε)·logσ(β(avg_c − avg_r) − γ) − ε·logσ(−(β(avg_c − avg_r) − γ))
    /// (Meng et al. 2024, SimPO Eq. 6; TRL <c>CPOTrainer.cpo_loss</c> with <c>loss_type="simpo"</c>), plus
    /// cpo_alpha·mean(nll_c) when <see cref="PreferenceLossOptions.CpoAlpha"/> &gt; 0 (CPO-SimPO; ms-swift keeps
    /// cpo_alpha 1 for simpo). γ = <see cref="PreferenceLossOptions.SimpoGamma"/>. Rewards: β·avg_c, β·avg_r.
    /// </summary>
    /// <param name="avgChosen">Policy per-token mean log-probabilities of the chosen responses [B].</param>
    /// <param name="avgRejected">Policy per-token mean log-probabilities of the rejected responses [B].</param>
    /// <param name="chosenNll">Per-sample mean token NLL of the chosen responses [B]; required when cpo_alpha &gt; 0.</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult SimPo(Tensor avgChosen, Tensor avgRejected, Tensor? chosenNll, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(avgChosen, avgRejected, chosenNll);
        if (o.ResolvedCpoAlpha > 0 && chosenNll is null) throw new ArgumentException("--cpo_alpha > 0 needs the chosen responses' NLL.", nameof(chosenNll));
        using var scope = NewDisposeScope();
        var loss = SmoothedSigmoidLoss((avgChosen - avgRejected) * o.ResolvedBeta - o.SimpoGamma, o.LabelSmoothing).mean();
        if (o.ResolvedCpoAlpha > 0) loss = loss + chosenNll!.mean() * o.ResolvedCpoAlpha;
        var metrics = PairMetrics(avgChosen.detach() * o.ResolvedBeta, avgRejected.detach() * o.ResolvedBeta, avgChosen, avgRejected, chosenNll);
        return Finish(scope, loss, metrics);
    }

    /// <summary>
    /// Contrastive Preference Optimization, reference-free: −(1−ε)·logσ(β(π_c − π_r)) − ε·logσ(−β(π_c − π_r)) +
    /// cpo_alpha·mean(nll_c) (Xu et al. 2024, CPO Eq. 3–4; TRL <c>CPOTrainer.cpo_loss</c>, <c>loss_type="sigmoid"</c>).
    /// Rewards: β·π_c, β·π_r.
    /// </summary>
    /// <param name="policyChosen">Policy log-probability sums of the chosen responses [B].</param>
    /// <param name="policyRejected">Policy log-probability sums of the rejected responses [B].</param>
    /// <param name="chosenNll">Per-sample mean token NLL of the chosen responses [B].</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult Cpo(Tensor policyChosen, Tensor policyRejected, Tensor chosenNll, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(policyChosen, policyRejected, chosenNll);
        using var scope = NewDisposeScope();
        var loss = SmoothedSigmoidLoss((policyChosen - policyRejected) * o.ResolvedBeta, o.LabelSmoothing).mean() + chosenNll.mean() * o.ResolvedCpoAlpha;
        var metrics = PairMetrics(policyChosen.detach() * o.ResolvedBeta, policyRejected.detach() * o.ResolvedBeta, policyChosen, policyRejected, chosenNll);
        return Finish(scope, loss, metrics);
    }

    /// <summary>
    /// Odds Ratio Preference Optimization, reference-free: with log odds(y) = avg − log(1 − e^avg),
    /// L = mean(nll_c) − β·mean(logσ(log odds(y_c) − log odds(y_r))) (Hong et al. 2024, ORPO Eq. 6–7, λ = β;
    /// TRL <c>ORPOTrainer.odds_ratio_loss</c>). Rewards: β·avg_c, β·avg_r; also logs <c>log_odds_ratio</c> (the mean
    /// logσ term) and <c>log_odds_chosen</c> (the mean log odds ratio).
    /// </summary>
    /// <param name="avgChosen">Policy per-token mean log-probabilities of the chosen responses [B] (negative).</param>
    /// <param name="avgRejected">Policy per-token mean log-probabilities of the rejected responses [B] (negative).</param>
    /// <param name="chosenNll">Per-sample mean token NLL of the chosen responses [B].</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult Orpo(Tensor avgChosen, Tensor avgRejected, Tensor chosenNll, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(avgChosen, avgRejected, chosenNll);
        using var scope = NewDisposeScope();
        // log1p(-exp(x)) is log(1 - p): the odds' denominator, finite for the strictly negative mean log-probabilities.
        var logOdds = (avgChosen - avgRejected) - ((-avgChosen.exp()).log1p() - (-avgRejected.exp()).log1p());
        var ratio = nn.functional.logsigmoid(logOdds);
        var loss = chosenNll.mean() - ratio.mean() * o.ResolvedBeta;
        var metrics = PairMetrics(avgChosen.detach() * o.ResolvedBeta, avgRejected.detach() * o.ResolvedBeta, avgChosen, avgRejected, chosenNll);
        metrics["log_odds_ratio"] = ratio.detach().mean();
        metrics["log_odds_chosen"] = logOdds.detach().mean();
        return Finish(scope, loss, metrics);
    }

    /// <summary>
    /// Kahneman-Tversky Optimization on unpaired samples (Ethayarajh et al. 2024, KTO Eq. 8; TRL <c>KTOTrainer.kto_loss</c>):
    /// with r = π − ref per sample and the reference point z = max(0, mean(π_KL − ref_KL)), detached, the loss of a
    /// desirable sample is w_d·(1 − σ(β(r − z))) and of an undesirable one w_u·(1 − σ(β(z − r))); the loss is their mean
    /// over all samples. π_KL/ref_KL are log-probabilities of mismatched (prompt, completion) pairs, TRL's KL estimate.
    /// Metrics: <c>kl</c> (z), and over the desirable / undesirable samples present: rewards β·r, their margin and the
    /// policy log-probabilities (a key is left out when its samples are absent from the batch).
    /// </summary>
    /// <param name="policy">Policy log-probability sums of the completions [B].</param>
    /// <param name="reference">Reference log-probability sums of the completions [B].</param>
    /// <param name="desirable">Boolean [B]: true where the completion is desirable.</param>
    /// <param name="policyKl">Policy log-probability sums of the mismatched KL completions [B'].</param>
    /// <param name="referenceKl">Reference log-probability sums of the mismatched KL completions [B'].</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult Kto(Tensor policy, Tensor reference, Tensor desirable, Tensor policyKl, Tensor referenceKl, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(policy, reference, desirable);
        CheckBatch(policyKl, referenceKl);
        if (desirable.dtype != ScalarType.Bool) throw new ArgumentException($"desirable must be a bool tensor (got {desirable.dtype}).", nameof(desirable));
        using var scope = NewDisposeScope();
        var beta = o.ResolvedBeta;
        var z = (policyKl - referenceKl).mean().clamp_min(0).detach();
        var logRatio = policy - reference;
        var desirableLoss = (1 - ((logRatio - z) * beta).sigmoid()) * o.DesirableWeight;
        var undesirableLoss = (1 - ((z - logRatio) * beta).sigmoid()) * o.UndesirableWeight;
        var loss = where(desirable, desirableLoss, undesirableLoss).mean();
        var rewards = logRatio.detach() * beta;
        var metrics = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["kl"] = z };
        var undesirable = desirable.logical_not();
        var nDesirable = desirable.sum().item<long>();
        var nUndesirable = desirable.numel() - nDesirable;
        if (nDesirable > 0)
        {
            metrics["rewards/chosen"] = rewards.masked_select(desirable).mean();
            metrics["logps/chosen"] = policy.detach().masked_select(desirable).mean();
        }
        if (nUndesirable > 0)
        {
            metrics["rewards/rejected"] = rewards.masked_select(undesirable).mean();
            metrics["logps/rejected"] = policy.detach().masked_select(undesirable).mean();
        }
        if (nDesirable > 0 && nUndesirable > 0) metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"];
        return Finish(scope, loss, metrics);
    }

    /// <summary>
    /// Bradley-Terry reward-model loss (Ouyang et al. 2022, InstructGPT Eq. 1; TRL <c>RewardTrainer</c>):
    /// −mean(logσ(r_c − r_r − m)) with an optional per-pair margin m (Llama 2, Touvron et al. 2023), plus
    /// coef·mean((r_c + r_r)²) when <see cref="PreferenceLossOptions.CenterRewardsCoefficient"/> &gt; 0 (Eisenstein et al. 2023).
    /// Metrics: rewards/chosen, rewards/rejected (mean rewards), rewards/accuracies (r_c &gt; r_r), rewards/margins.
    /// </summary>
    /// <param name="rewardChosen">Scalar rewards of the chosen responses [B].</param>
    /// <param name="rewardRejected">Scalar rewards of the rejected responses [B].</param>
    /// <param name="margin">Optional per-pair margins [B].</param>
    /// <param name="o">Options.</param>
    /// <returns>The loss and metrics.</returns>
    public static PreferenceLossResult RewardModel(Tensor rewardChosen, Tensor rewardRejected, Tensor? margin, PreferenceLossOptions o)
    {
        o.Validate();
        CheckBatch(rewardChosen, rewardRejected, margin);
        using var scope = NewDisposeScope();
        var difference = rewardChosen - rewardRejected;
        if (margin is not null) difference = difference - margin;
        var loss = -nn.functional.logsigmoid(difference).mean();
        if (o.CenterRewardsCoefficient > 0) loss = loss + (rewardChosen + rewardRejected).square().mean() * o.CenterRewardsCoefficient;
        var metrics = PairMetrics(rewardChosen.detach(), rewardRejected.detach(), null, null, null);
        return Finish(scope, loss, metrics);
    }

    /// <summary>−(1−ε)·logσ(x) − ε·logσ(−x): the sigmoid preference loss with label smoothing ε (cDPO).</summary>
    static Tensor SmoothedSigmoidLoss(Tensor x, double eps) =>
        eps == 0 ? -nn.functional.logsigmoid(x) : -nn.functional.logsigmoid(x) * (1 - eps) - nn.functional.logsigmoid(-x) * eps;

    /// <summary>TRL's paired metrics from detached per-sample rewards, plus log-probabilities and NLL where given.</summary>
    static Dictionary<string, Tensor> PairMetrics(Tensor chosenRewards, Tensor rejectedRewards, Tensor? chosenLogps, Tensor? rejectedLogps, Tensor? nll)
    {
        var metrics = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["rewards/chosen"] = chosenRewards.mean(),
            ["rewards/rejected"] = rejectedRewards.mean(),
            ["rewards/accuracies"] = chosenRewards.gt(rejectedRewards).to(chosenRewards.dtype).mean(),
            ["rewards/margins"] = (chosenRewards - rejectedRewards).mean(),
        };
        if (chosenLogps is not null) metrics["logps/chosen"] = chosenLogps.detach().mean();
        if (rejectedLogps is not null) metrics["logps/rejected"] = rejectedLogps.detach().mean();
        if (nll is not null) metrics["nll_loss"] = nll.detach().mean();
        return metrics;
    }

    /// <summary>Moves the loss and metrics out of <paramref name="scope"/>; the rest of the intermediates are released with it.</summary>
    static PreferenceLossResult Finish(DisposeScope scope, Tensor loss, Dictionary<string, Tensor> metrics)
    {
        scope.MoveToOuter(loss);
        foreach (var metric in metrics.Values) scope.MoveToOuter(metric);
        return new PreferenceLossResult(loss, metrics);
    }

    /// <summary>Every given tensor must be one-dimensional and of the first one's length.</summary>
    static void CheckBatch(Tensor first, params Tensor?[] others)
    {
        if (first.dim() != 1) throw new ArgumentException($"preference-loss inputs must be one-dimensional [B] tensors (got shape [{string.Join(", ", first.shape)}]).");
        foreach (var other in others)
            if (other is not null && (other.dim() != 1 || other.shape[0] != first.shape[0]))
                throw new ArgumentException($"preference-loss inputs must all have shape [{first.shape[0]}] (got [{string.Join(", ", other.shape)}]).");
    }
}
