using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

// Copies and memsets, all queued on the device's stream so they are ordered with kernels and GEMMs. (The plain
// synchronous cuMemcpy* run on the legacy NULL stream, which a non-blocking stream does not wait for.)
public sealed unsafe partial class CudaDevice
{
    /// <summary>
    /// Queues a copy from pageable host memory. The driver stages pageable memory before the call returns, so
    /// <paramref name="source"/> may be reused at once; use <see cref="CopyToDeviceAsync{T}"/> with pinned memory
    /// for transfers that overlap with kernels.
    /// </summary>
    public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        if (profiler is null) { CopyToDeviceNow(source, destination); return; }
        int begin = profiler.Begin();
        CopyToDeviceNow(source, destination);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.CopyHostToDevice), begin);
    }

    private void CopyToDeviceNow<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        RequireSameLength(source.Length, destination.Length, "host → device");
        if (source.IsEmpty) return;
        MakeCurrent();
        nuint bytes = (nuint)destination.ByteLength;
        fixed (T* host = source)
        {
            var result = CudaDriver.cuMemcpyHtoDAsync_v2(destination.Address, host, bytes, streamValue);
            if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemcpyHtoDAsync_v2({bytes} bytes to 0x{destination.Address:x})");
        }
    }

    /// <summary>Waits for the work queued before it, then copies into <paramref name="destination"/>.</summary>
    public void CopyToHost<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged
    {
        if (profiler is null) { CopyToHostNow(source, destination); return; }
        int begin = profiler.Begin();
        CopyToHostNow(source, destination);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToHost), begin);
    }

    private void CopyToHostNow<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged
    {
        RequireSameLength(destination.Length, source.Length, "device → host");
        if (destination.IsEmpty) return;
        MakeCurrent();
        nuint bytes = (nuint)source.ByteLength;
        fixed (T* host = destination)
        {
            var result = CudaDriver.cuMemcpyDtoHAsync_v2(host, source.Address, bytes, streamValue);
            if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemcpyDtoHAsync_v2({bytes} bytes from 0x{source.Address:x})");
            // The copy into pageable memory has to be complete before `fixed` lets the GC move the array.
            result = CudaDriver.cuStreamSynchronize(streamValue);
            if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuStreamSynchronize (copying {bytes} bytes to the host)");
        }
    }

    public void CopyDeviceToDevice<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        if (profiler is null) { CopyDeviceToDeviceNow(source, destination); return; }
        int begin = profiler.Begin();
        CopyDeviceToDeviceNow(source, destination);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToDevice), begin);
    }

    private void CopyDeviceToDeviceNow<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        RequireSameLength(source.Length, destination.Length, "device → device");
        if (source.Length == 0) return;
        ulong bytes = (ulong)source.ByteLength;
        if (source.Address < destination.Address + bytes && destination.Address < source.Address + bytes)
            throw new ArgumentException($"Device → device copy of {source.Length} elements between overlapping ranges 0x{source.Address:x} and 0x{destination.Address:x}.");
        MakeCurrent();
        var result = CudaDriver.cuMemcpyDtoDAsync_v2(destination.Address, source.Address, (nuint)bytes, streamValue);
        if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemcpyDtoDAsync_v2({bytes} bytes, 0x{source.Address:x} → 0x{destination.Address:x})");
    }

    /// <summary>Queues setting every byte of <paramref name="destination"/> to zero.</summary>
    public void Zero<T>(DeviceSpan<T> destination) where T : unmanaged
    {
        if (profiler is null) { ZeroNow(destination); return; }
        int begin = profiler.Begin();
        ZeroNow(destination);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.Memset), begin);
    }

    private void ZeroNow<T>(DeviceSpan<T> destination) where T : unmanaged
    {
        if (destination.Length == 0) return;
        MakeCurrent();
        ulong bytes = (ulong)destination.ByteLength;
        // 32-bit stores when the range allows them: a quarter of the memset's store count.
        var result = (bytes % 4 == 0 && destination.Address % 4 == 0)
            ? CudaDriver.cuMemsetD32Async(destination.Address, 0, (nuint)(bytes / 4), streamValue)
            : CudaDriver.cuMemsetD8Async(destination.Address, 0, (nuint)bytes, streamValue);
        if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemsetAsync({bytes} bytes at 0x{destination.Address:x})");
    }

    /// <summary>Allocates page-locked host memory, which the GPU can copy from and to while the host goes on.</summary>
    public PinnedHostBuffer<T> AllocatePinned<T>(long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = checked(Math.Max(count, 1) * sizeof(T));
        MakeCurrent();
        void* host;
        var result = CudaDriver.cuMemAllocHost_v2(&host, (nuint)bytes);
        if (result != CuResult.Success)
            throw CudaCheck.Failure(result, $"cuMemAllocHost_v2({bytes} bytes)", "page-locked host memory is limited: use smaller staging buffers");
        return new PinnedHostBuffer<T>(new PinnedHostHandle(context, (nint)host), count);
    }

    /// <summary>Queues a copy of <paramref name="destination"/>.Length elements from <paramref name="source"/>[<paramref name="sourceStart"/>..]; returns at once.</summary>
    public void CopyToDeviceAsync<T>(PinnedHostBuffer<T> source, long sourceStart, DeviceSpan<T> destination) where T : unmanaged
    {
        if (profiler is null) { CopyToDeviceAsyncNow(source, sourceStart, destination); return; }
        int begin = profiler.Begin();
        CopyToDeviceAsyncNow(source, sourceStart, destination);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.CopyHostToDevice), begin);
    }

    private void CopyToDeviceAsyncNow<T>(PinnedHostBuffer<T> source, long sourceStart, DeviceSpan<T> destination) where T : unmanaged
    {
        var host = source.Pointer(sourceStart, destination.Length);
        if (destination.Length == 0) return;
        MakeCurrent();
        nuint bytes = (nuint)destination.ByteLength;
        var result = CudaDriver.cuMemcpyHtoDAsync_v2(destination.Address, host, bytes, streamValue);
        if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemcpyHtoDAsync_v2({bytes} pinned bytes to 0x{destination.Address:x})");
    }

    /// <summary>Queues a copy of <paramref name="source"/> into <paramref name="destination"/>[<paramref name="destinationStart"/>..]; wait with <see cref="Synchronize"/> or an event before reading it.</summary>
    public void CopyToHostAsync<T>(DeviceSpan<T> source, PinnedHostBuffer<T> destination, long destinationStart) where T : unmanaged
    {
        if (profiler is null) { CopyToHostAsyncNow(source, destination, destinationStart); return; }
        int begin = profiler.Begin();
        CopyToHostAsyncNow(source, destination, destinationStart);
        profiler.End(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToHost), begin);
    }

    private void CopyToHostAsyncNow<T>(DeviceSpan<T> source, PinnedHostBuffer<T> destination, long destinationStart) where T : unmanaged
    {
        var host = destination.Pointer(destinationStart, source.Length);
        if (source.Length == 0) return;
        MakeCurrent();
        nuint bytes = (nuint)source.ByteLength;
        var result = CudaDriver.cuMemcpyDtoHAsync_v2(host, source.Address, bytes, streamValue);
        if (result != CuResult.Success) throw CudaCheck.Failure(result, $"cuMemcpyDtoHAsync_v2({bytes} bytes from 0x{source.Address:x} to pinned memory)");
    }

    private static void RequireSameLength(long from, long to, string direction)
    {
        if (from != to) throw new ArgumentException($"Copy {direction} of {from} elements into {to}: the lengths must match (slice one side first).");
    }
}
