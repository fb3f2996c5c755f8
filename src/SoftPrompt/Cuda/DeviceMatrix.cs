namespace SoftPrompt.Cuda;

/// <summary>
/// A frozen weight matrix on a device, stored in fp32 or in bf16 (<see cref="SoftPrompt.Engines.Precision.Bf16"/>: half the
/// memory, GEMMs on bf16 tensor cores). The span <see cref="IsBf16"/> names holds it; an fp32 span converts implicitly.
/// </summary>
public readonly record struct DeviceMatrix(DeviceSpan<float> Fp32, DeviceSpan<ushort> Bf16, bool IsBf16)
{
    public long Length => IsBf16 ? Bf16.Length : Fp32.Length;

    public static implicit operator DeviceMatrix(DeviceSpan<float> fp32) => new(fp32, default, false);
    public static DeviceMatrix OfBf16(DeviceSpan<ushort> bf16) => new(default, bf16, true);

    /// <summary>Elements [start, start + length): e.g. a block of whole rows of a row-major matrix.</summary>
    public DeviceMatrix Slice(long start, long length) => IsBf16 ? OfBf16(Bf16.Slice(start, length)) : Fp32.Slice(start, length);
}
