namespace SoftPrompt.Cuda;

// Events and timers on the device's stream, for waiting on part of the queue and for benchmarks.
public sealed partial class CudaDevice
{
    /// <param name="timing">False makes a lighter event that can only be waited on.</param>
    public CudaEvent CreateEvent(bool timing = true) => CudaEvent.Create(this, timing);

    public CudaTimer CreateTimer() => new(this);
}
