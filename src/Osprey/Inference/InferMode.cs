namespace Osprey.Inference;

/// <summary>The three ways of <c>osprey infer</c>.</summary>
public enum InferMode
{
    /// <summary>An interactive chat on stdin.</summary>
    Chat,
    /// <summary>Answer (or score) every row of --val_dataset files.</summary>
    Dataset,
    /// <summary>Prompts given as token ids (--input_ids).</summary>
    Ids,
}
