using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Text.Json;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A Hugging Face model directory's weights as one lookup, from the first of: <c>model.safetensors.index.json</c> (and
/// the shards it maps tensor names to), <c>model.safetensors</c>, <c>pytorch_model.bin.index.json</c> (and its .bin
/// shards), <c>pytorch_model.bin</c>. Safetensors win when both formats are present; PyTorch files are read by
/// <see cref="TorchZipFile"/> (no Python, no code run) and present the same names, dtypes and reads. With an index,
/// the index is authoritative: tensors a shard holds but the index does not list are not visible.
/// </summary>
public sealed class CheckpointDirectory : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";
    public const string TorchFileName = "pytorch_model.bin";
    public const string TorchIndexFileName = "pytorch_model.bin.index.json";

    private readonly List<TensorFile> _shards;
    private readonly Dictionary<string, TensorFile> _fileOf;

    private CheckpointDirectory(string directory, List<TensorFile> shards, Dictionary<string, TensorFile> fileOf)
    {
        DirectoryPath = directory;
        _shards = shards;
        _fileOf = fileOf;
    }

    public static CheckpointDirectory Open(string directory)
    {
        if (!Directory.Exists(directory))
            throw new CheckpointException($"{directory}: model directory not found; pass the folder that holds config.json and model.safetensors (or pytorch_model.bin).");
        string index = Path.Combine(directory, IndexFileName);
        if (File.Exists(index)) return OpenSharded(directory, index, SafeTensorFile.Open);
        string single = Path.Combine(directory, SingleFileName);
        if (File.Exists(single)) return OpenSingle(directory, SafeTensorFile.Open(single));
        string torchIndex = Path.Combine(directory, TorchIndexFileName);
        if (File.Exists(torchIndex)) return OpenSharded(directory, torchIndex, TorchZipFile.Open);
        string torchSingle = Path.Combine(directory, TorchFileName);
        if (File.Exists(torchSingle)) return OpenSingle(directory, TorchZipFile.Open(torchSingle));
        throw new CheckpointException(NoWeightsMessage(directory));
    }

    public string DirectoryPath { get; }

    /// <summary>The open files: one, or every shard the index names.</summary>
    public IReadOnlyList<TensorFile> Files => _shards;

    public IEnumerable<string> TensorNames => _fileOf.Keys;

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public bool TryGetInfo(string name, [MaybeNullWhen(false)] out TensorInfo info)
    {
        info = null;
        return _fileOf.TryGetValue(name, out var file) && file.TryGetInfo(name, out info);
    }

    public TensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>The file holding <paramref name="name"/>, for zero-copy views and pointers.</summary>
    public TensorFile FileOf(string name) => _fileOf.TryGetValue(name, out var file)
        ? file
        : throw new CheckpointException($"{DirectoryPath}: no tensor named '{name}' in the checkpoint; {NearestNames.Describe(name, _fileOf.Keys)}.");

    /// <summary>Reads an F32/F16/BF16/F64 tensor, converting to <typeparamref name="T"/> (float or double).</summary>
    public void Read<T>(string name, Span<T> destination) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        FileOf(name).Read(name, destination);

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }

    private static CheckpointDirectory OpenSingle(string directory, TensorFile file) =>
        new(directory, [file], file.TensorNames.ToDictionary(n => n, _ => file, StringComparer.Ordinal));

    private static CheckpointDirectory OpenSharded(string directory, string indexPath, Func<string, TensorFile> open)
    {
        var weightMap = ReadWeightMap(indexPath);
        var shards = new List<TensorFile>();
        var byShardName = new Dictionary<string, TensorFile>(StringComparer.Ordinal);
        var fileOf = new Dictionary<string, TensorFile>(weightMap.Count, StringComparer.Ordinal);
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
                    shard = open(shardPath);
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
            document = StrictJson.Parse(File.ReadAllBytes(indexPath));
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

    /// <summary>
    /// Says what the directory holds instead and what to do. Conversions in Python name the model's own class from
    /// config.json's "architectures" (a causal-LM class would drop a T5 model's decoder), or say to use it.
    /// </summary>
    private static string NoWeightsMessage(string directory)
    {
        var present = Directory.EnumerateFiles(directory).Select(Path.GetFileName).OfType<string>().ToList();
        List<string> Having(params string[] suffixes) => present.Where(f => suffixes.Any(s => f.EndsWith(s, StringComparison.Ordinal))).ToList();
        var otherSafetensors = Having(".safetensors");
        var pickles = Having(".bin", ".pt", ".pth", ".ckpt");
        var tensorflow = Having(".h5");
        var flax = Having(".msgpack");
        string message = $"{directory}: no {SingleFileName}, {TorchFileName} or their shard indexes ({IndexFileName}, {TorchIndexFileName}).";
        if (otherSafetensors.Count > 0)
            message += $" Found {string.Join(", ", otherSafetensors)}: rename a single-file checkpoint to {SingleFileName}, or download the index that lists the shards.";
        if (pickles.Count > 0)
            message += $" Found PyTorch files under other names ({string.Join(", ", pickles)}): rename a single-file state dict to {TorchFileName}, or download {TorchIndexFileName} with the shards.";
        if (otherSafetensors.Count == 0 && pickles.Count == 0)
        {
            if (tensorflow.Count > 0 || flax.Count > 0)
            {
                string source = tensorflow.Count > 0 ? "from_tf=True" : "from_flax=True";
                string? architecture = ArchitectureOf(directory);
                message += $" Found only {(tensorflow.Count > 0 ? "TensorFlow" : "Flax")} weights ({string.Join(", ", tensorflow.Concat(flax))}), which SoftPrompt does not read."
                    + " Download the repository's .safetensors or pytorch_model*.bin files if it has them, or convert once in Python with the model's own class"
                    + (architecture is null
                        ? $" (the transformers class for this model with its LM head): <ModelClass>.from_pretrained('{directory}', {source}).save_pretrained('<out dir>')."
                        : $": from transformers import {architecture}; {architecture}.from_pretrained('{directory}', {source}).save_pretrained('<out dir>').");
            }
            else
                message += " Download the model's weights (e.g. huggingface-cli download <repo> --include '*.safetensors' '*.json', or '*.bin' '*.json' for repositories that ship only PyTorch files).";
        }
        return message;
    }

    /// <summary>config.json's first "architectures" entry (e.g. T5ForConditionalGeneration), when it is a plain identifier.</summary>
    private static string? ArchitectureOf(string directory)
    {
        try
        {
            using var config = StrictJson.Parse(File.ReadAllBytes(Path.Combine(directory, "config.json")));
            if (config.RootElement.ValueKind == JsonValueKind.Object && config.RootElement.TryGetProperty("architectures", out var list)
                && list.ValueKind == JsonValueKind.Array && list.GetArrayLength() > 0 && list[0].ValueKind == JsonValueKind.String
                && list[0].GetString() is { Length: > 0 } name && name.All(char.IsAsciiLetterOrDigit))
                return name;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { /* no usable config: name no class */ }
        return null;
    }
}
