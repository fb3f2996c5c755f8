namespace SoftPrompt.Cuda;

/// <summary>An owned allocation of <see cref="Length"/> elements on a device; freed on Dispose.</summary>
public sealed class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly IComputeDevice device;
    private ulong address;

    public DeviceBuffer(IComputeDevice device, ulong address, long length)
    {
        this.device = device;
        this.address = address;
        Length = length;
    }

    public long Length { get; }
    public ulong Address => address != 0 || Length == 0 ? address : throw new ObjectDisposedException(nameof(DeviceBuffer<T>));
    public DeviceSpan<T> Span => new(Address, Length);
    public DeviceSpan<T> Slice(long start, long length) => Span.Slice(start, length);

    public void CopyFrom(ReadOnlySpan<T> source)
    {
        if (source.Length > Length) throw new ArgumentException($"Copy of {source.Length} elements into a device buffer of {Length}.");
        device.CopyToDevice(source, Span.Slice(0, source.Length));
    }

    public void CopyTo(Span<T> destination)
    {
        if (destination.Length > Length) throw new ArgumentException($"Copy of {destination.Length} elements out of a device buffer of {Length}.");
        device.CopyToHost(Span.Slice(0, destination.Length), destination);
    }

    public void Dispose()
    {
        if (address == 0) return;
        device.Free(address);
        address = 0;
    }
}
