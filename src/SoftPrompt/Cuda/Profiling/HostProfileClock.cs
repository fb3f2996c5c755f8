using System.Diagnostics;

namespace SoftPrompt.Cuda;

/// <summary>Host clock stamps, for a device whose ops have finished when the call that queued them returns (the emulator).</summary>
internal sealed class HostProfileClock : IProfileClock
{
    private long[] timestamps = new long[2048];

    public void Stamp(int index)
    {
        if (index >= timestamps.Length) Array.Resize(ref timestamps, Math.Max(2 * timestamps.Length, index + 1));
        timestamps[index] = Stopwatch.GetTimestamp();
    }

    public void WaitForStamps(int count) { }

    public double ElapsedMilliseconds(int from, int to) => Stopwatch.GetElapsedTime(timestamps[from], timestamps[to]).TotalMilliseconds;

    public void Dispose() { }
}
