namespace Osprey.Server.Workbench;

/// <summary>The language of the web UI's strings (<c>--lang</c>).</summary>
public enum UiLanguage
{
    /// <summary>English.</summary>
    En,

    /// <summary>Simplified Chinese.</summary>
    Zh,
}
