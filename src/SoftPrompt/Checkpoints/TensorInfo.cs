using System.Collections.Immutable;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// One tensor of a <see cref="TensorFile"/>. <see cref="Begin"/>/<see cref="End"/> locate its bytes: in a safetensors
/// file the header's data_offsets (relative to the first byte after the header), in a PyTorch zip checkpoint file
/// offsets. <see cref="FilePath"/> is the file that holds it, for messages.
/// </summary>
public sealed class TensorInfo
{
    internal TensorInfo(string name, SafeTensorDType dtype, ImmutableArray<long> shape, long begin, long end, string filePath)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        Begin = begin;
        End = end;
        FilePath = filePath;
    }

    public string Name { get; }
    public SafeTensorDType DType { get; }
    public ImmutableArray<long> Shape { get; }
    public long Begin { get; }
    public long End { get; }
    public string FilePath { get; }
    public long ByteLength => End - Begin;
    public long ElementCount => ByteLength / DType.ElementSize;

    /// <summary>The shape as "[768, 2304]" (scalars print as "[]").</summary>
    public string ShapeText => FormatShape(Shape.AsSpan());

    public bool HasShape(ReadOnlySpan<long> expected) => Shape.AsSpan().SequenceEqual(expected);

    public override string ToString() => $"{Name} {DType} {ShapeText}";

    internal static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
