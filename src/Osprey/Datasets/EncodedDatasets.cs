namespace Osprey.Datasets;

/// <summary>Training and validation samples of one encoding.</summary>
public sealed record EncodedDatasets(EncodedDataset Train, EncodedDataset Validation)
{
    /// <summary>
    /// Writes a cached-dataset folder (train.bin, val.bin and an optional info.txt), as ms-swift's
    /// <c>export --to_cached_dataset</c> output for <c>--cached_dataset</c>: written beside it under a temporary
    /// name and renamed into place; an existing folder is replaced.
    /// </summary>
    public void SaveFolder(string folder, string? info = null)
    {
        var full = Path.GetFullPath(folder);
        var parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            Train.Save(Path.Combine(temp, "train.bin"));
            Validation.Save(Path.Combine(temp, "val.bin"));
            if (info is not null) File.WriteAllText(Path.Combine(temp, "info.txt"), info);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(temp, full);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Reads a folder <see cref="SaveFolder"/> (or the cache) wrote.</summary>
    public static EncodedDatasets LoadFolder(string folder)
    {
        var train = Path.Combine(folder, "train.bin");
        if (!File.Exists(train)) throw new OspreyException($"{folder} has no train.bin; pass a folder written by osprey encode --to_cached_dataset.");
        var val = Path.Combine(folder, "val.bin");
        return new EncodedDatasets(EncodedDataset.Load(train), File.Exists(val) ? EncodedDataset.Load(val) : EncodedDataset.Empty);
    }
}
