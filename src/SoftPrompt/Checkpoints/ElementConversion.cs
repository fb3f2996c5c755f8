using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// Converts little-endian tensor bytes to and from float/double. Sources may be unaligned (safetensors
/// only aligns the header), which spans over x64/Arm64 memory tolerate.
/// </summary>
internal static class ElementConversion
{
    public static void ToSingle(SafeTensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case SafeTensorDType.F32: MemoryMarshal.Cast<byte, float>(source).CopyTo(destination); break;
            case SafeTensorDType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination); break;
            case SafeTensorDType.BF16: BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(source), destination); break;
            case SafeTensorDType.F64:
                var doubles = MemoryMarshal.Cast<byte, double>(source);
                for (int i = 0; i < doubles.Length; i++) destination[i] = (float)doubles[i];
                break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    public static void ToDouble(SafeTensorDType dtype, ReadOnlySpan<byte> source, Span<double> destination)
    {
        switch (dtype)
        {
            case SafeTensorDType.F64: MemoryMarshal.Cast<byte, double>(source).CopyTo(destination); break;
            case SafeTensorDType.F32:
                var floats = MemoryMarshal.Cast<byte, float>(source);
                for (int i = 0; i < floats.Length; i++) destination[i] = floats[i];
                break;
            case SafeTensorDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < halves.Length; i++) destination[i] = (double)halves[i];
                break;
            case SafeTensorDType.BF16:
                var bits = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < bits.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
        }
    }

    /// <summary>bfloat16 is the top half of a float, so widening is a 16-bit shift: exact, no rounding.</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= source.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                Vector.Widen(new Vector<ushort>(source[i..]), out var low, out var high);
                (low << 16).CopyTo(bits[i..]);
                (high << 16).CopyTo(bits[(i + Vector<uint>.Count)..]);
            }
        }
        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    /// <summary>Round to nearest, ties to even (PyTorch's rule); NaN stays a quiet NaN with its sign.</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        uint lsb = (bits >> 16) & 1;
        return (ushort)((bits + 0x7FFF + lsb) >> 16);
    }

    /// <summary><see cref="SingleToBFloat16(float)"/> element by element.</summary>
    public static void SingleToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = SingleToBFloat16(source[i]);
    }

    /// <summary>
    /// double → float → bfloat16 would round twice and can miss a tie by one ulp; rounding the first step
    /// to odd (truncate, then set the sticky low bit when inexact) makes the second rounding exact.
    /// </summary>
    public static ushort DoubleToBFloat16(double value)
    {
        float nearest = (float)value;
        if (double.IsNaN(value) || nearest == value) return SingleToBFloat16(nearest);
        uint bits = BitConverter.SingleToUInt32Bits(nearest);
        if (Math.Abs((double)nearest) > Math.Abs(value)) bits--; // one step toward zero in sign-magnitude
        return SingleToBFloat16(BitConverter.UInt32BitsToSingle(bits | 1));
    }
}
