using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>Page-locked host memory from <see cref="CudaDevice.AllocatePinned{T}"/>; freed on Dispose.</summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly PinnedHostHandle handle;

    internal PinnedHostBuffer(PinnedHostHandle handle, long length)
    {
        if (length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), "Pinned buffers are limited to int.MaxValue elements so they can be viewed as a Span.");
        this.handle = handle;
        Length = length;
    }

    public long Length { get; }

    /// <summary>The memory; do not touch it while an async copy into or out of it is in flight.</summary>
    public Span<T> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle.IsClosed, this);
            return new Span<T>((void*)handle.DangerousGetHandle(), (int)Length);
        }
    }

    internal T* Pointer(long start, long count)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        if ((ulong)start > (ulong)Length || (ulong)count > (ulong)(Length - start))
            throw new ArgumentOutOfRangeException(nameof(start), $"Range [{start}, {start + count}) is outside a pinned buffer of {Length} elements.");
        return (T*)handle.DangerousGetHandle() + start;
    }

    public void Dispose() => handle.Dispose();
}
