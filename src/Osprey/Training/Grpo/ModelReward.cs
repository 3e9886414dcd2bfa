using Osprey.Inference;
using Osprey.Models;

namespace Osprey.Training.Grpo;

/// <summary>
/// <c>--reward_model</c>: a <c>*ForSequenceClassification</c> model (e.g. <c>osprey rlhf --rlhf_type rm</c>'s output)
/// scores the prompt followed by the completion as an assistant turn, rendered with its own chat template; the first
/// label's score is the reward.
/// </summary>
internal sealed class ModelReward : IRewardFunction, IDisposable
{
    readonly CausalLM _model;
    readonly ChatPrompt _chat;

    public ModelReward(string folder, ModelLoadOptions load)
    {
        if (!CausalLM.IsRewardFolder(folder))
            throw new OspreyException($"--reward_model {folder} is not a reward model: its config.json names no *ForSequenceClassification architecture; train one with osprey rlhf --rlhf_type rm.");
        _model = CausalLM.Load(folder, load);
        _model.eval();
        _chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(folder, "--reward_model"), folder, null);
    }

    public string Name => "reward_model";

    public IReadOnlyList<double> Score(IReadOnlyList<RewardInput> batch) => batch.Select(c =>
    {
        var messages = c.Messages.Append(InferenceDataset.Message("assistant", c.Completion)).ToList();
        var ids = _chat.EncodeRendered(_chat.Tokenizer.ApplyChatTemplate(messages, new Tokenization.ChatTemplateOptions { AddGenerationPrompt = false }));
        return (double)TokenIdInference.Score(_model, ids)[0];
    }).ToList();

    public void Dispose() => _model.Dispose();
}
