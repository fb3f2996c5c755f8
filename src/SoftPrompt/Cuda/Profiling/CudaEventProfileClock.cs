namespace SoftPrompt.Cuda;

/// <summary>
/// CUDA events as stamps: each is recorded on the device's stream, so the time between two is the GPU's time for the
/// work queued between them, without waiting on the host. The pool is created when profiling starts and grows (by
/// doubling) only while a step queues more ops than any before.
/// </summary>
internal sealed class CudaEventProfileClock : IProfileClock
{
    private const int InitialEvents = 4096;

    private readonly CudaDevice device;
    private readonly List<CudaEvent> events = [];

    public CudaEventProfileClock(CudaDevice device)
    {
        this.device = device;
        try { Grow(InitialEvents); }
        catch { Dispose(); throw; }
    }

    public void Stamp(int index)
    {
        if (index >= events.Count) Grow(Math.Max(2 * events.Count, index + 1));
        events[index].Record();
    }

    public void WaitForStamps(int count)
    {
        if (count > 0) events[count - 1].Synchronize();
    }

    public double ElapsedMilliseconds(int from, int to) => CudaEvent.ElapsedMilliseconds(events[from], events[to]);

    private void Grow(int size)
    {
        while (events.Count < size) events.Add(device.CreateEvent(timing: true));
    }

    public void Dispose()
    {
        foreach (var e in events) e.Dispose();
        events.Clear();
    }
}
