namespace Osprey.Options;

/// <summary>What a flag's value is, which decides how it is parsed, shown in help and rendered in a form.</summary>
public enum OptionKind
{
    /// <summary>Free text.</summary>
    String,

    /// <summary>A 32-bit integer.</summary>
    Int,

    /// <summary>A 64-bit integer.</summary>
    Long,

    /// <summary>A floating-point number (<c>1e-4</c>).</summary>
    Double,

    /// <summary>true or false; a bare flag is true.</summary>
    Bool,

    /// <summary>One of <see cref="OptionSpec.Choices"/>.</summary>
    Choice,

    /// <summary>Several values (<c>--dataset a b c</c>).</summary>
    List,
}
