namespace SoftPrompt.Cuda;

/// <summary>
/// The time stamps a profiler brackets ops with: CUDA events recorded on the device's stream, or host clock readings on
/// a device that runs each op to completion before returning. Stamps are numbered from 0; the clock keeps what it
/// created for them (events) across <see cref="DeviceProfiler.Reset"/>, so a profiled step in the steady state
/// creates nothing.
/// </summary>
internal interface IProfileClock : IDisposable
{
    /// <summary>Stamps "now" in the device's queue as stamp <paramref name="index"/> (indices grow by one from 0).</summary>
    void Stamp(int index);
    /// <summary>Waits until every stamp so far has been reached (once per read).</summary>
    void WaitForStamps(int count);
    double ElapsedMilliseconds(int from, int to);
}

/// <summary>
/// Times every op a device queues while profiling is on (<see cref="IComputeDevice.StartProfiling"/>): the device
/// brackets each kernel launch, GEMM, copy and memset with two stamps and records which op it was.
/// <see cref="Read"/> waits once, turns the stamps into times and sums them per label. Recording appends a value to
/// an array that keeps its size across reads, so steady-state profiled steps do not allocate.
/// </summary>
public sealed class DeviceProfiler : IDisposable
{
    private readonly record struct Recorded(DeviceOp Op, int Begin, int End);

    private readonly IProfileClock clock;
    private Recorded[] recorded = new Recorded[1024];
    private int count, stamps;
    private bool disposed;

    internal DeviceProfiler(IProfileClock clock) => this.clock = clock;

    /// <summary>Ops recorded since the last <see cref="Read"/> or <see cref="Reset"/>.</summary>
    public int RecordedOps => count;

    /// <summary>Stamps the start of an op; pass the result to <see cref="End"/> once the op is queued.</summary>
    internal int Begin()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        clock.Stamp(stamps);
        return stamps++;
    }

    internal void End(in DeviceOp op, int begin)
    {
        clock.Stamp(stamps);
        if (count == recorded.Length) Array.Resize(ref recorded, 2 * count);
        recorded[count++] = new Recorded(op, begin, stamps++);
    }

    /// <summary>Forgets what was recorded (e.g. a warm-up step).</summary>
    public void Reset()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        clock.WaitForStamps(stamps);
        count = 0;
        stamps = 0;
    }

    /// <summary>
    /// Waits for the recorded ops, then returns their times summed per label and divided by <paramref name="steps"/>
    /// (the number of steps they came from), and starts a new recording.
    /// </summary>
    public DeviceProfile Read(int steps = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ObjectDisposedException.ThrowIf(disposed, this);
        clock.WaitForStamps(stamps);
        var totals = new Dictionary<DeviceOp, (long Calls, double Milliseconds)>();
        for (int i = 0; i < count; i++)
        {
            var r = recorded[i];
            double ms = clock.ElapsedMilliseconds(r.Begin, r.End);
            totals[r.Op] = totals.TryGetValue(r.Op, out var t) ? (t.Calls + 1, t.Milliseconds + ms) : (1, ms);
        }
        count = 0;
        stamps = 0;
        var rows = totals
            .GroupBy(e => e.Key.Label, StringComparer.Ordinal)
            .Select(g => new DeviceOpTime(g.Key, g.First().Key.Kind, (double)g.Sum(e => e.Value.Calls) / steps, g.Sum(e => e.Value.Milliseconds) / steps,
                g.Sum(e => e.Key.Flops * e.Value.Calls) / steps))
            .OrderByDescending(o => o.Milliseconds).ThenBy(o => o.Label, StringComparer.Ordinal)
            .ToList();
        return new DeviceProfile(rows, steps);
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        clock.Dispose();
    }
}
