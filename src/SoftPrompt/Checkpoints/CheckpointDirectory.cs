using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Text.Json;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A Hugging Face model directory's weights as one lookup: <c>model.safetensors</c>, or the shards that
/// <c>model.safetensors.index.json</c> maps tensor names to. With an index, the index is authoritative:
/// tensors a shard holds but the index does not list are not visible.
/// </summary>
public sealed class CheckpointDirectory : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafeTensorFile> _shards;
    private readonly Dictionary<string, SafeTensorFile> _fileOf;

    private CheckpointDirectory(string directory, List<SafeTensorFile> shards, Dictionary<string, SafeTensorFile> fileOf)
    {
        DirectoryPath = directory;
        _shards = shards;
        _fileOf = fileOf;
    }

    public static CheckpointDirectory Open(string directory)
    {
        if (!Directory.Exists(directory))
            throw new CheckpointException($"{directory}: model directory not found; pass the folder that holds config.json and model.safetensors.");
        string index = Path.Combine(directory, IndexFileName);
        if (File.Exists(index)) return OpenSharded(directory, index);
        string single = Path.Combine(directory, SingleFileName);
        if (File.Exists(single))
        {
            var file = SafeTensorFile.Open(single);
            return new CheckpointDirectory(directory, [file], file.TensorNames.ToDictionary(n => n, _ => file, StringComparer.Ordinal));
        }
        throw new CheckpointException(NoSafetensorsMessage(directory));
    }

    public string DirectoryPath { get; }

    /// <summary>The open files: one, or every shard the index names.</summary>
    public IReadOnlyList<SafeTensorFile> Files => _shards;

    public IEnumerable<string> TensorNames => _fileOf.Keys;

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public bool TryGetInfo(string name, [MaybeNullWhen(false)] out TensorInfo info)
    {
        info = null;
        return _fileOf.TryGetValue(name, out var file) && file.TryGetInfo(name, out info);
    }

    public TensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>The file holding <paramref name="name"/>, for zero-copy views and pointers.</summary>
    public SafeTensorFile FileOf(string name) => _fileOf.TryGetValue(name, out var file)
        ? file
        : throw new CheckpointException($"{DirectoryPath}: no tensor named '{name}' in the checkpoint; {NearestNames.Describe(name, _fileOf.Keys)}.");

    /// <summary>Reads an F32/F16/BF16/F64 tensor, converting to <typeparamref name="T"/> (float or double).</summary>
    public void Read<T>(string name, Span<T> destination) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        FileOf(name).Read(name, destination);

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }

    private static CheckpointDirectory OpenSharded(string directory, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var shards = new List<SafeTensorFile>();
        var byShardName = new Dictionary<string, SafeTensorFile>(StringComparer.Ordinal);
        var fileOf = new Dictionary<string, SafeTensorFile>(weightMap.Count, StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!byShardName.TryGetValue(shardName, out var shard))
                {
                    string shardPath = Path.Combine(directory, shardName);
                    if (!File.Exists(shardPath))
                    {
                        int listed = weightMap.Values.Count(v => v == shardName);
                        throw new CheckpointException(
                            $"{indexPath}: shard '{shardName}' (holding {listed} tensors, e.g. '{tensor}') is missing from {directory}; download every file the index lists.");
                    }
                    shard = SafeTensorFile.Open(shardPath);
                    shards.Add(shard);
                    byShardName.Add(shardName, shard);
                }
                if (!shard.Contains(tensor))
                    throw new CheckpointException(
                        $"{indexPath}: tensor '{tensor}' is listed in shard '{shardName}' but that file does not hold it ({NearestNames.Describe(tensor, shard.TensorNames)}); the index and shards come from different exports, re-download them together.");
                fileOf.Add(tensor, shard);
            }
        }
        catch
        {
            foreach (var shard in shards) shard.Dispose();
            throw;
        }
        return new CheckpointDirectory(directory, shards, fileOf);
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        const string fix = "re-download the index or regenerate it with save_pretrained";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new CheckpointException($"{indexPath}: cannot read the shard index ({e.Message}); {fix}.", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath}: the shard index has no \"weight_map\" object; {fix}.");
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                string? shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString() : null;
                // Shards must be plain names beside the index: an index must not reach elsewhere on disk.
                if (string.IsNullOrEmpty(shard) || shard != Path.GetFileName(shard))
                    throw new CheckpointException($"{indexPath}: weight_map entry '{entry.Name}' must name a shard file in the same directory, found {entry.Value.GetRawText()}; {fix}.");
                if (!weightMap.TryAdd(entry.Name, shard))
                    throw new CheckpointException($"{indexPath}: weight_map lists '{entry.Name}' twice; {fix}.");
            }
            if (weightMap.Count == 0)
                throw new CheckpointException($"{indexPath}: weight_map is empty; {fix}.");
            return weightMap;
        }
    }

    private static string NoSafetensorsMessage(string directory)
    {
        var present = Directory.EnumerateFiles(directory).Select(Path.GetFileName).OfType<string>().ToList();
        var pickles = present.Where(f => f.EndsWith(".bin", StringComparison.Ordinal) || f.EndsWith(".pt", StringComparison.Ordinal)
                                         || f.EndsWith(".pth", StringComparison.Ordinal) || f.EndsWith(".ckpt", StringComparison.Ordinal)).ToList();
        var otherSafetensors = present.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
        string message = $"{directory}: no {SingleFileName} or {IndexFileName}.";
        if (otherSafetensors.Count > 0)
            message += $" Found {string.Join(", ", otherSafetensors)}: rename a single-file checkpoint to {SingleFileName}.";
        if (pickles.Count > 0)
            message += $" Found PyTorch pickle weights ({string.Join(", ", pickles)}), which are not supported (loading a pickle can run arbitrary code)."
                + " Convert them once with Python: from transformers import AutoModelForCausalLM; "
                + $"AutoModelForCausalLM.from_pretrained('{directory}').save_pretrained('<out dir>', safe_serialization=True)"
                + " — or download the repository's .safetensors files instead.";
        else if (otherSafetensors.Count == 0)
            message += " Download the model's safetensors weights (e.g. huggingface-cli download <repo> --include '*.safetensors' '*.json').";
        return message;
    }
}
