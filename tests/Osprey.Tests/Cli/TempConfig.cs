namespace Osprey.Tests.Cli;

/// <summary>A config file in a fresh temporary folder, deleted with the folder on dispose.</summary>
internal sealed class TempConfig : IDisposable
{
    private readonly string _folder;

    public TempConfig(string fileName, string text)
    {
        _folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "osprey-cli-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder);
        Path = System.IO.Path.Combine(_folder, fileName);
        File.WriteAllText(Path, text);
    }

    public string Path { get; }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
