using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// Builds a safetensors file. Each Add converts its span to the stored dtype at once (so the caller may
/// reuse the buffer); <see cref="Save"/> writes atomically. Data is ordered by element size, largest first,
/// then by name (ordinal), like the reference library: with the header padded to 8 bytes every tensor
/// starts naturally aligned. The header lists "__metadata__" first, then tensors in data order.
/// Meant for prompts, tests and generated models: it holds the whole file in memory until saved.
/// </summary>
public sealed class SafeTensorWriter
{
    private readonly List<Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    private sealed record Entry(string Name, SafeTensorDType DType, long[] Shape, byte[] Data);

    /// <summary>Written as the header's "__metadata__" (string to string, as the format requires).</summary>
    public IDictionary<string, string> Metadata { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <param name="storeAs">F32, F16 or BF16 (round to nearest even), or F64.</param>
    public void Add(string name, ReadOnlySpan<float> data, ReadOnlySpan<long> shape, SafeTensorDType storeAs = SafeTensorDType.F32)
    {
        var bytes = Allocate(name, storeAs, shape, data.Length);
        switch (storeAs)
        {
            case SafeTensorDType.F32: MemoryMarshal.AsBytes(data).CopyTo(bytes); break;
            case SafeTensorDType.F16: TensorPrimitives.ConvertToHalf(data, MemoryMarshal.Cast<byte, Half>(bytes.AsSpan())); break;
            case SafeTensorDType.BF16:
                var bf16 = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < data.Length; i++) bf16[i] = ElementConversion.SingleToBFloat16(data[i]);
                break;
            case SafeTensorDType.F64:
                var f64 = MemoryMarshal.Cast<byte, double>(bytes.AsSpan());
                for (int i = 0; i < data.Length; i++) f64[i] = data[i];
                break;
            default: throw new ArgumentException($"Tensor '{name}': float data can be stored as F32, F16, BF16 or F64, not {storeAs}.", nameof(storeAs));
        }
        Commit(name, storeAs, shape, bytes);
    }

    /// <param name="storeAs">F64, or F32/F16/BF16 rounded to nearest even in one step.</param>
    public void Add(string name, ReadOnlySpan<double> data, ReadOnlySpan<long> shape, SafeTensorDType storeAs = SafeTensorDType.F64)
    {
        var bytes = Allocate(name, storeAs, shape, data.Length);
        switch (storeAs)
        {
            case SafeTensorDType.F64: MemoryMarshal.AsBytes(data).CopyTo(bytes); break;
            case SafeTensorDType.F32:
                var f32 = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                for (int i = 0; i < data.Length; i++) f32[i] = (float)data[i];
                break;
            case SafeTensorDType.F16:
                var f16 = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                for (int i = 0; i < data.Length; i++) f16[i] = (Half)data[i];
                break;
            case SafeTensorDType.BF16:
                var bf16 = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < data.Length; i++) bf16[i] = ElementConversion.DoubleToBFloat16(data[i]);
                break;
            default: throw new ArgumentException($"Tensor '{name}': double data can be stored as F64, F32, F16 or BF16, not {storeAs}.", nameof(storeAs));
        }
        Commit(name, storeAs, shape, bytes);
    }

    /// <summary>Stored as I64.</summary>
    public void Add(string name, ReadOnlySpan<long> data, ReadOnlySpan<long> shape) =>
        AddRaw(name, SafeTensorDType.I64, shape, MemoryMarshal.AsBytes(data));

    /// <summary>Stored as I32.</summary>
    public void Add(string name, ReadOnlySpan<int> data, ReadOnlySpan<long> shape) =>
        AddRaw(name, SafeTensorDType.I32, shape, MemoryMarshal.AsBytes(data));

    /// <summary>Stores bytes already in <paramref name="dtype"/>'s little-endian encoding (any dtype).</summary>
    public void AddRaw(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % dtype.ElementSize != 0)
            throw new ArgumentException($"Tensor '{name}': {bytes.Length} bytes is not a whole number of {dtype} elements.", nameof(bytes));
        var copy = Allocate(name, dtype, shape, bytes.Length / dtype.ElementSize);
        bytes.CopyTo(copy);
        Commit(name, dtype, shape, copy);
    }

    /// <summary>Writes to <paramref name="path"/> atomically: a temp file in the same directory, fsync, rename.</summary>
    public void Save(string path) => AtomicFile.Write(path, WriteTo);

    /// <summary>Test seam: lets a test wrap the file stream to fail mid-write.</summary>
    internal void Save(string path, Func<Stream, Stream> decorate) => AtomicFile.Write(path, stream => WriteTo(decorate(stream)));

    public void WriteTo(Stream stream)
    {
        var ordered = _entries
            .OrderByDescending(e => e.DType.ElementSize)
            .ThenBy(e => e.Name, StringComparer.Ordinal)
            .ToList();
        var header = Header(Metadata, ordered.Select(e => (e.Name, e.DType, (IReadOnlyList<long>)e.Shape, (long)e.Data.Length)));
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var entry in ordered) stream.Write(entry.Data);
    }

    /// <summary>
    /// The header for tensors whose data follows in <paramref name="ordered"/>'s order, back to back; padded to 8 bytes.
    /// Also used by <see cref="CheckpointConverter"/>, which streams the data from mapped files instead of holding it.
    /// </summary>
    internal static byte[] Header(IDictionary<string, string> metadata, IEnumerable<(string Name, SafeTensorDType DType, IReadOnlyList<long> Shape, long ByteLength)> ordered)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps non-ASCII names readable; the header is never embedded in HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in ordered)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType.ToString());
                json.WriteStartArray("shape");
                foreach (long size in entry.Shape) json.WriteNumberValue(size);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset += entry.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so data starts 8-byte aligned, as the Python library does.
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private byte[] Allocate(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, int elements)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved for the metadata; use Metadata.", nameof(name));
        if (_names.Contains(name)) throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        long count = 1;
        foreach (long size in shape)
        {
            if (size < 0) throw new ArgumentException($"Tensor '{name}': shape {TensorInfo.FormatShape(shape)} has a negative dimension.", nameof(shape));
            count = checked(count * size);
        }
        if (count != elements)
            throw new ArgumentException($"Tensor '{name}': shape {TensorInfo.FormatShape(shape)} holds {count} elements but the data has {elements}.", nameof(shape));
        return new byte[checked(elements * dtype.ElementSize)];
    }

    private void Commit(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, byte[] bytes)
    {
        _names.Add(name);
        _entries.Add(new Entry(name, dtype, shape.ToArray(), bytes));
    }
}
