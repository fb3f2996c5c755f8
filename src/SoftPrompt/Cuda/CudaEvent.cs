using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>A marker in the device's stream: recorded after the work queued so far, waited on, timed against another.</summary>
public sealed unsafe class CudaEvent : IDisposable
{
    private readonly CudaDevice device;
    private readonly CudaEventHandle handle;

    private CudaEvent(CudaDevice device, CudaEventHandle handle)
    {
        this.device = device;
        this.handle = handle;
    }

    internal static CudaEvent Create(CudaDevice device, bool timing)
    {
        device.MakeCurrent();
        nint raw;
        uint flags = timing ? CuEventFlags.Default : CuEventFlags.DisableTiming;
        CudaCheck.Driver(CudaDriver.cuEventCreate(&raw, flags), $"cuEventCreate({(timing ? "CU_EVENT_DEFAULT" : "CU_EVENT_DISABLE_TIMING")})");
        return new CudaEvent(device, new CudaEventHandle(device.Context, raw));
    }

    /// <summary>Queues the event on the device's stream: it completes when everything queued before it has.</summary>
    public void Record()
    {
        device.MakeCurrent();
        CudaCheck.Driver(CudaDriver.cuEventRecord(Value, device.StreamValue), "cuEventRecord");
    }

    /// <summary>Blocks until the event has completed.</summary>
    public void Synchronize()
    {
        device.MakeCurrent();
        CudaCheck.Driver(CudaDriver.cuEventSynchronize(Value), "cuEventSynchronize");
    }

    /// <summary>GPU time in milliseconds (about 0.5 µs resolution) from <paramref name="start"/> to <paramref name="end"/>; both recorded, end completed.</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        end.device.MakeCurrent();
        float ms;
        var result = CudaDriver.cuEventElapsedTime(&ms, start.Value, end.Value);
        if (result != CuResult.Success)
            throw CudaCheck.Failure(result, "cuEventElapsedTime",
                "both events must have been recorded, created with timing, and the end event completed (Synchronize it first)");
        return ms;
    }

    public void Dispose() => handle.Dispose();

    private nint Value
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle.IsClosed, this);
            return handle.DangerousGetHandle();
        }
    }
}

/// <summary>Times stream work with a pair of events: <see cref="Start"/>, queue work, <see cref="Stop"/> (waits) → milliseconds.</summary>
public sealed class CudaTimer : IDisposable
{
    private readonly CudaEvent start, stop;

    internal CudaTimer(CudaDevice device)
    {
        start = CudaEvent.Create(device, timing: true);
        try { stop = CudaEvent.Create(device, timing: true); }
        catch { start.Dispose(); throw; }
    }

    public void Start() => start.Record();

    /// <summary>Records the stop event, waits for it and returns the GPU time since <see cref="Start"/>.</summary>
    public float Stop()
    {
        stop.Record();
        stop.Synchronize();
        return CudaEvent.ElapsedMilliseconds(start, stop);
    }

    public void Dispose()
    {
        start.Dispose();
        stop.Dispose();
    }
}
