using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.InteropServices;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A memory-mapped file of named tensors: a safetensors file (<see cref="SafeTensorFile"/>) or a PyTorch zip
/// checkpoint (<see cref="TorchZipFile"/>). Each tensor is a contiguous byte range of the file, so reads convert
/// straight from the mapped pages into the caller's destination (one copy), and views and pointers stay valid
/// until <see cref="Dispose"/>. Two names may share bytes (tied weights). Reads may run concurrently.
/// </summary>
public abstract unsafe class TensorFile : IDisposable
{
    // Conversions work in slices of at most 1 GiB so tensors past int.MaxValue bytes still convert through spans.
    private const long ChunkBytes = 1L << 30;

    private readonly MappedFile _file;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorInfo> _byName;

    /// <param name="dataStart">Where <see cref="TensorInfo.Begin"/> counts from, in file bytes.</param>
    private protected TensorFile(MappedFile file, IReadOnlyList<TensorInfo> tensors, long dataStart)
    {
        _file = file;
        _dataStart = dataStart;
        Tensors = tensors;
        _byName = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var tensor in tensors) _byName.Add(tensor.Name, tensor);
    }

    public string Path => _file.Path;

    /// <summary>Every tensor, in the file's own order (data order for safetensors, the state dict's for PyTorch).</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    public IEnumerable<string> TensorNames => Tensors.Select(t => t.Name);

    public bool Contains(string name) => _byName.ContainsKey(name);

    public bool TryGetInfo(string name, [MaybeNullWhen(false)] out TensorInfo info) => _byName.TryGetValue(name, out info);

    public TensorInfo GetInfo(string name) => _byName.TryGetValue(name, out var info)
        ? info
        : throw new CheckpointException($"{Path}: no tensor named '{name}'; {NearestNames.Describe(name, _byName.Keys)}.");

    /// <summary>Zero-copy view of the tensor's stored bytes (any dtype). Tensors over 2 GiB: use <see cref="GetPointer"/>.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = GetInfo(name);
        if (info.ByteLength > int.MaxValue)
            throw new CheckpointException($"{Path}: tensor '{name}' is {info.ByteLength} bytes, too large for a span; use GetPointer.");
        return new ReadOnlySpan<byte>(DataPointer(info), (int)info.ByteLength);
    }

    /// <summary>Address of the tensor's first stored byte, valid until Dispose (e.g. as a host→device copy source).</summary>
    public byte* GetPointer(string name) => DataPointer(GetInfo(name));

    /// <summary>Reads an F32/F16/BF16/F64 tensor into <paramref name="destination"/> (length = element count).</summary>
    public void ReadAsFloat(string name, Span<float> destination) =>
        ConvertFloat(name, destination, static (dtype, source, target) => ElementConversion.ToSingle(dtype, source, target));

    /// <summary>Reads an F32/F16/BF16/F64 tensor into <paramref name="destination"/> (length = element count).</summary>
    public void ReadAsDouble(string name, Span<double> destination) =>
        ConvertFloat(name, destination, static (dtype, source, target) => ElementConversion.ToDouble(dtype, source, target));

    /// <summary><see cref="ReadAsFloat"/> or <see cref="ReadAsDouble"/> by <typeparamref name="T"/>.</summary>
    public void Read<T>(string name, Span<T> destination) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) ReadAsFloat(name, MemoryMarshal.Cast<T, float>(destination));
        else if (typeof(T) == typeof(double)) ReadAsDouble(name, MemoryMarshal.Cast<T, double>(destination));
        else throw new NotSupportedException($"Reading tensors as {typeof(T).Name} is not supported; use float or double.");
    }

    /// <summary>Allocates (uninitialised, then filled) and reads a whole tensor.</summary>
    public T[] Read<T>(string name) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var result = GC.AllocateUninitializedArray<T>(checked((int)GetInfo(name).ElementCount));
        Read<T>(name, result);
        return result;
    }

    /// <summary>Reads an I64 or I32 tensor (token ids, labels).</summary>
    public void ReadInt64(string name, Span<long> destination)
    {
        var info = CheckDestination(name, destination.Length);
        var source = Whole(info);
        if (info.DType == SafeTensorDType.I64) MemoryMarshal.Cast<byte, long>(source).CopyTo(destination);
        else if (info.DType == SafeTensorDType.I32)
        {
            var ints = MemoryMarshal.Cast<byte, int>(source);
            for (int i = 0; i < ints.Length; i++) destination[i] = ints[i];
        }
        else throw WrongDType(info, "I64 or I32");
    }

    /// <summary>Reads an I32 tensor, or an I64 one whose values all fit in 32 bits.</summary>
    public void ReadInt32(string name, Span<int> destination)
    {
        var info = CheckDestination(name, destination.Length);
        var source = Whole(info);
        if (info.DType == SafeTensorDType.I32) MemoryMarshal.Cast<byte, int>(source).CopyTo(destination);
        else if (info.DType == SafeTensorDType.I64)
        {
            var longs = MemoryMarshal.Cast<byte, long>(source);
            for (int i = 0; i < longs.Length; i++)
            {
                if (longs[i] is < int.MinValue or > int.MaxValue)
                    throw new CheckpointException($"{Path}: tensor '{name}' element {i} is {longs[i]}, outside the 32-bit range; read it with ReadInt64.");
                destination[i] = (int)longs[i];
            }
        }
        else throw WrongDType(info, "I32 or I64");
    }

    public void Dispose() => _file.Dispose();

    private delegate void Converter<TDest>(SafeTensorDType dtype, ReadOnlySpan<byte> source, Span<TDest> destination);

    private void ConvertFloat<TDest>(string name, Span<TDest> destination, Converter<TDest> convert)
    {
        var info = CheckDestination(name, destination.Length);
        if (!info.DType.IsConvertibleFloat) throw WrongDType(info, "F32, F16, BF16 or F64");
        int size = info.DType.ElementSize;
        long chunk = ChunkBytes / size;
        byte* data = DataPointer(info);
        for (long done = 0; done < destination.Length; done += chunk)
        {
            int count = (int)Math.Min(chunk, destination.Length - done);
            convert(info.DType, new ReadOnlySpan<byte>(data + done * size, count * size), destination.Slice((int)done, count));
        }
    }

    private TensorInfo CheckDestination(string name, int destinationLength)
    {
        var info = GetInfo(name);
        if (info.ElementCount != destinationLength)
            throw new CheckpointException(
                $"{Path}: tensor '{name}' has shape {info.ShapeText} ({info.ElementCount} elements) but the destination holds {destinationLength}; check the model config against the checkpoint.");
        return info;
    }

    /// <summary>Integer tensors are small (ids, labels): one span suffices.</summary>
    private ReadOnlySpan<byte> Whole(TensorInfo info) => new(DataPointer(info), checked((int)info.ByteLength));

    private byte* DataPointer(TensorInfo info) => _file.Start + _dataStart + info.Begin;

    private CheckpointException WrongDType(TensorInfo info, string accepted) =>
        new($"{Path}: tensor '{info.Name}' is stored as {info.DType}; this read accepts {accepted}. Convert the checkpoint or use GetBytes.");
}
