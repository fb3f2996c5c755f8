using System.Collections.Immutable;
using System.Text.Json;

namespace SoftPrompt.Checkpoints;

/// <summary>Parses and validates the JSON header of a safetensors file; every failure names file and tensor.</summary>
internal static class SafeTensorHeader
{
    /// <summary>The reference implementation refuses larger headers; so do we, before allocating for one.</summary>
    public const long MaxLength = 100_000_000;

    private const string Regenerate = "the file is corrupt or was not written by a safetensors writer; re-download or re-export it";

    /// <param name="json">The header bytes (after the 8-byte length).</param>
    /// <param name="dataLength">Bytes after the header: every data offset must fall inside.</param>
    /// <returns>Tensors ordered by data offset (the order they sit in the file).</returns>
    public static (TensorInfo[] Tensors, Dictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> json, long dataLength, string path)
    {
        JsonDocument document;
        try
        {
            document = StrictJson.Parse(json.ToArray());
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: the safetensors header is not valid JSON ({e.Message}); {Regenerate}.", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{path}: the safetensors header is a JSON {root.ValueKind}, not an object; {Regenerate}.");

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<TensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                // JsonDocument keeps duplicate keys; a second entry would silently shadow the first.
                if (!seen.Add(property.Name))
                    throw new CheckpointException($"{path}: header names '{property.Name}' twice; {Regenerate}.");
                if (property.Name == "__metadata__")
                    ParseMetadata(property.Value, metadata, path);
                else
                    tensors.Add(ParseTensor(property.Name, property.Value, dataLength, path));
            }
            var ordered = tensors.ToArray();
            CheckNoOverlap(ordered, path);
            return (ordered, metadata);
        }
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, string path)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{path}: '__metadata__' must be an object of strings, found a JSON {value.ValueKind}; {Regenerate}.");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointException($"{path}: '__metadata__' entry '{entry.Name}' must be a string, found a JSON {entry.Value.ValueKind}; {Regenerate}.");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static TensorInfo ParseTensor(string name, JsonElement value, long dataLength, string path)
    {
        string where = $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{where}: header entry must be an object with dtype, shape and data_offsets, found a JSON {value.ValueKind}; {Regenerate}.");

        var dtypeText = Field(value, "dtype", JsonValueKind.String, where).GetString()!;
        if (!SafeTensorDTypeExtensions.TryParse(dtypeText, out var dtype))
            throw new CheckpointException($"{where}: unknown dtype '{dtypeText}' (known: {SafeTensorDTypeExtensions.KnownNames}); convert the tensor to one of these.");

        var shapeElement = Field(value, "shape", JsonValueKind.Array, where);
        var shape = ImmutableArray.CreateBuilder<long>(shapeElement.GetArrayLength());
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long size))
                throw new CheckpointException($"{where}: shape entries must be integers, found {dim.GetRawText()}; {Regenerate}.");
            if (size < 0)
                throw new CheckpointException($"{where}: shape {shapeElement.GetRawText()} has a negative dimension; {Regenerate}.");
            shape.Add(size);
        }

        var offsets = Field(value, "data_offsets", JsonValueKind.Array, where);
        if (offsets.GetArrayLength() != 2)
            throw new CheckpointException($"{where}: data_offsets must be [begin, end], found {offsets.GetRawText()}; {Regenerate}.");
        long begin = Offset(offsets[0], where), end = Offset(offsets[1], where);
        if (begin > end)
            throw new CheckpointException($"{where}: data_offsets [{begin}, {end}] begin after they end; {Regenerate}.");
        if (end > dataLength)
            throw new CheckpointException($"{where}: data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes after the header); the file is truncated, re-download it.");

        long elements = 1;
        try
        {
            foreach (long size in shape) elements = checked(elements * size);
            long bytes = checked(elements * dtype.ElementSize);
            if (bytes != end - begin)
                throw new CheckpointException($"{where}: shape {TensorInfo.FormatShape(shape.ToArray())} of {dtype} needs {bytes} bytes but data_offsets [{begin}, {end}] hold {end - begin}; {Regenerate}.");
        }
        catch (OverflowException)
        {
            throw new CheckpointException($"{where}: shape {shapeElement.GetRawText()} overflows a 64-bit element count; {Regenerate}.");
        }
        return new TensorInfo(name, dtype, shape.MoveToImmutable(), begin, end, path);
    }

    private static JsonElement Field(JsonElement entry, string field, JsonValueKind kind, string where)
    {
        if (!entry.TryGetProperty(field, out var value))
            throw new CheckpointException($"{where}: header entry has no '{field}'; {Regenerate}.");
        if (value.ValueKind != kind)
            throw new CheckpointException($"{where}: '{field}' must be a JSON {kind}, found {value.GetRawText()}; {Regenerate}.");
        return value;
    }

    private static long Offset(JsonElement value, string where)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long offset) || offset < 0)
            throw new CheckpointException($"{where}: data_offsets entries must be non-negative integers, found {value.GetRawText()}; {Regenerate}.");
        return offset;
    }

    /// <summary>Sorts by data offset and rejects two tensors sharing bytes (gaps are tolerated).</summary>
    private static void CheckNoOverlap(TensorInfo[] tensors, string path)
    {
        Array.Sort(tensors, static (a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        TensorInfo? previous = null;
        foreach (var tensor in tensors)
        {
            if (tensor.ByteLength == 0) continue;
            if (previous is not null && tensor.Begin < previous.End)
                throw new CheckpointException(
                    $"{path}: tensors '{previous.Name}' [{previous.Begin}, {previous.End}] and '{tensor.Name}' [{tensor.Begin}, {tensor.End}] overlap; {Regenerate}.");
            previous = tensor;
        }
    }
}
