namespace Osprey.Options;

/// <summary>
/// Marks a property whose value is another options record: its flags belong to the enclosing record's set (the
/// LoRA flags inside the fine-tuning options). The property's initializer supplies the nested defaults.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class OptionGroupAttribute : Attribute;
