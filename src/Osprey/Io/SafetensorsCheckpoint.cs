using System.Text.Json;
using System.Text.Unicode;
using static TorchSharp.torch;

namespace Osprey.Io;

/// <summary>
/// The weights of a Hugging Face model folder: <c>model.safetensors.index.json</c> and its shards,
/// <c>model.safetensors</c>, or a lone <c>*.safetensors</c>, presented as one set of named tensors. Every file is
/// memory-mapped for the checkpoint's lifetime and read tensor by tensor.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    private const string IndexName = "model.safetensors.index.json";
    private const string SingleName = "model.safetensors";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _owner;
    private readonly List<string> _names;

    private SafetensorsCheckpoint(string directory, List<SafetensorsFile> files)
    {
        Directory = directory;
        _files = files;
        _owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        _names = new List<string>();
        foreach (var file in files)
        {
            foreach (var entry in file.Entries)
            {
                if (!_owner.TryAdd(entry.Name, file))
                {
                    throw new OspreyFormatException(
                        $"The tensor '{entry.Name}' is in both {_owner[entry.Name].Path} and {file.Path}; the checkpoint in {directory} mixes two saves, delete the stale shards and save again.");
                }
                _names.Add(entry.Name);
            }
        }
        Files = files.Select(file => file.Path).ToArray();
    }

    /// <summary>The model folder, as a full path.</summary>
    public string Directory { get; }

    /// <summary>The full paths of the safetensors files opened, in shard order.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>Every tensor name, file by file in the order the bytes are stored (the cheapest order to read in).</summary>
    public IReadOnlyCollection<string> Names => _names;

    /// <summary>
    /// Opens the weights of a model folder: the shards named by <c>model.safetensors.index.json</c> if present, else
    /// <c>model.safetensors</c>, else the folder's only <c>*.safetensors</c> file.
    /// </summary>
    /// <exception cref="OspreyFormatException">The folder holds no weights, the index is malformed or names a missing shard, a file is corrupt, or a tensor appears in two files.</exception>
    public static SafetensorsCheckpoint Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new OspreyFormatException($"The model folder {directory} does not exist; point --model at a Hugging Face model folder.");
        }

        var index = Path.Combine(directory, IndexName);
        if (File.Exists(index))
        {
            return OpenIndexed(directory, index);
        }
        var single = Path.Combine(directory, SingleName);
        if (File.Exists(single))
        {
            return OpenFiles(directory, [single]);
        }
        var candidates = System.IO.Directory.GetFiles(directory, "*.safetensors");
        if (candidates.Length == 1)
        {
            return OpenFiles(directory, candidates);
        }
        var found = candidates.Length == 0
            ? ""
            : $" (found {candidates.Length} other .safetensors files, so which one holds the weights is ambiguous)";
        throw new OspreyFormatException(
            $"There is no {SingleName} or {IndexName} in {directory}{found}; point --model at a Hugging Face model folder.");
    }

    /// <summary>Whether the checkpoint has a tensor of that name.</summary>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The header entry of a tensor.</summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name is in the checkpoint.</exception>
    public SafetensorsEntry Entry(string name) => FileOf(name)[name];

    /// <summary>Reads a tensor into a new contiguous CPU tensor; see <see cref="SafetensorsFile.ReadTensor"/>.</summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name is in the checkpoint.</exception>
    public Tensor ReadTensor(string name) => FileOf(name).ReadTensor(name);

    /// <summary>The raw bytes of a one-byte-dtype tensor (FP8); see <see cref="SafetensorsFile.ReadBytes"/>.</summary>
    public Tensor ReadBytes(string name) => FileOf(name).ReadBytes(name);

    /// <summary>Unmaps every file. Tensors already read stay valid.</summary>
    public void Dispose()
    {
        foreach (var file in _files)
        {
            file.Dispose();
        }
    }

    private SafetensorsFile FileOf(string name) =>
        _owner.TryGetValue(name, out var file)
            ? file
            : throw new KeyNotFoundException($"The tensor '{name}' is not in the checkpoint in {Directory}.");

    private static SafetensorsCheckpoint OpenIndexed(string directory, string index)
    {
        var weightMap = ReadWeightMap(index);
        // Shards in name order, which for the -0000k-of-0000n scheme is their numeric order.
        var shardNames = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var paths = new List<string>();
        foreach (var shardName in shardNames)
        {
            if (Path.GetFileName(shardName) != shardName || shardName is "." or "..")
            {
                throw new OspreyFormatException(
                    $"The index {index} names the shard '{shardName}', which is not a plain file name in the model folder; the index is corrupt, download or save the model again.");
            }
            var path = Path.Combine(directory, shardName);
            if (!File.Exists(path))
            {
                throw new OspreyFormatException(
                    $"The index {index} names the shard {shardName}, which is missing from the folder; the download is incomplete, download the missing shard or the whole model again.");
            }
            paths.Add(path);
        }

        var checkpoint = OpenFiles(directory, paths);
        try
        {
            foreach (var (name, shardName) in weightMap)
            {
                var path = Path.Combine(directory, shardName);
                if (!checkpoint._owner.TryGetValue(name, out var file) || file.Path != path)
                {
                    throw new OspreyFormatException(
                        $"The index {index} places the tensor '{name}' in {shardName}, but that shard does not hold it; the index and shards come from different saves, download or save the model again.");
                }
            }
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
        return checkpoint;
    }

    private static Dictionary<string, string> ReadWeightMap(string index)
    {
        OspreyFormatException Malformed(string problem, Exception? inner = null)
        {
            var message = $"The index {index} is malformed ({problem}); download or save the model again.";
            return inner is null ? new OspreyFormatException(message) : new OspreyFormatException(message, inner);
        }

        var bytes = File.ReadAllBytes(index);
        if (!Utf8.IsValid(bytes))
        {
            throw Malformed("not valid UTF-8");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw Malformed($"not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("it has no \"weight_map\" object");
            }
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in map.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(property.Value.GetString()))
                {
                    throw Malformed($"the weight_map value for '{property.Name}' is not a file name");
                }
                if (!weightMap.TryAdd(property.Name, property.Value.GetString()!))
                {
                    throw Malformed($"the weight_map lists '{property.Name}' twice");
                }
            }
            if (weightMap.Count == 0)
            {
                throw Malformed("its weight_map is empty");
            }
            return weightMap;
        }
    }

    private static SafetensorsCheckpoint OpenFiles(string directory, IReadOnlyList<string> paths)
    {
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var path in paths)
            {
                files.Add(SafetensorsFile.Open(path));
            }
            return new SafetensorsCheckpoint(directory, files);
        }
        catch
        {
            foreach (var file in files)
            {
                file.Dispose();
            }
            throw;
        }
    }
}
