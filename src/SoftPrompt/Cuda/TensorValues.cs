namespace SoftPrompt.Cuda;

/// <summary>
/// A frozen tensor's values on their way into a device tensor (<see cref="ArenaCarver.Upload(string, long, TensorValues?)"/>):
/// a host array (<see cref="Of"/>), or a checkpoint tensor read from its memory mapping slice by slice
/// (<see cref="Checkpoints.StreamedTensor"/>), so loading a model onto a device never needs all of it on the host.
/// </summary>
internal abstract class TensorValues
{
    public abstract long Count { get; }

    /// <summary>Writes the values as fp32.</summary>
    public abstract void CopyTo(IComputeDevice device, DeviceSpan<float> destination);

    /// <summary>Writes the values as bf16, rounded to nearest even (values already bf16 are copied as they are).</summary>
    public abstract void CopyToBf16(IComputeDevice device, DeviceSpan<ushort> destination);

    public static TensorValues? Of(float[]? values) => values is null ? null : new HostTensorValues(values);

    private sealed class HostTensorValues(float[] values) : TensorValues
    {
        // Rounds in slices so a bf16 upload never makes a whole bf16 copy on the host.
        private const int Slice = 1 << 20;

        public override long Count => values.LongLength;

        public override void CopyTo(IComputeDevice device, DeviceSpan<float> destination) => device.CopyToDevice<float>(values, destination);

        public override void CopyToBf16(IComputeDevice device, DeviceSpan<ushort> destination)
        {
            var rounded = new ushort[(int)Math.Min(values.LongLength, Slice)];
            for (long start = 0; start < values.LongLength; start += rounded.Length)
            {
                int length = (int)Math.Min(rounded.Length, values.LongLength - start);
                Checkpoints.ElementConversion.SingleToBFloat16(values.AsSpan((int)start, length), rounded.AsSpan(0, length));
                device.CopyToDevice<ushort>(rounded.AsSpan(0, length), destination.Slice(start, length));
            }
        }
    }
}
