namespace Osprey.Training;

/// <summary>What a fine-tuning run trains (ms-swift's <c>--train_type</c>).</summary>
public enum TrainType
{
    /// <summary>LoRA adapters (DoRA, rsLoRA, LoRA+ by their flags) on a frozen base; saved as PEFT adapters.</summary>
    Lora,

    /// <summary>The base weights themselves (all, or those <c>--freeze_parameters</c> leaves); saved as a model folder.</summary>
    Full,
}
