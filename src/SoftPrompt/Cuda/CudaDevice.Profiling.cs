namespace SoftPrompt.Cuda;

// Per-op GPU time for `bench --profile`: every launch, GEMM, copy and memset between two CUDA events.
public sealed partial class CudaDevice
{
    private DeviceProfiler? profiler;

    public DeviceProfiler? Profiler => profiler;

    public DeviceProfiler StartProfiling()
    {
        ThrowIfDisposed();
        StopProfiling();
        profiler = new DeviceProfiler(new CudaEventProfileClock(this));
        return profiler;
    }

    public void StopProfiling()
    {
        profiler?.Dispose();
        profiler = null;
    }
}
