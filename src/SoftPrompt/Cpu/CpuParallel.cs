namespace SoftPrompt.Cpu;

/// <summary>
/// A fixed pool of worker threads for the CPU ops. Unlike Parallel.For it allocates nothing per call:
/// work is a function pointer over an unmanaged state that lives on the caller's stack (the caller
/// waits for every item, so the state outlives the work). Calls from inside a work item run inline.
/// </summary>
internal static unsafe class CpuParallel
{
    private static readonly object Gate = new();
    private static readonly SemaphoreSlim Wake = new(0);
    private static readonly int WorkerCount = Math.Max(0, Environment.ProcessorCount - 1);
    private static int started;

    private static delegate*<void*, int, void> body;
    private static void* state;
    private static int count;
    private static int next;
    private static int busyWorkers;
    private static Exception? failure;

    [ThreadStatic] private static bool insideWorkItem;

    /// <summary>Runs <paramref name="work"/>(state, i) for i in [0, itemCount) across the pool and waits.</summary>
    public static void For(int itemCount, delegate*<void*, int, void> work, void* workState)
    {
        if (itemCount <= 0) return;
        if (itemCount == 1 || WorkerCount == 0 || insideWorkItem)
        {
            for (int i = 0; i < itemCount; i++) work(workState, i);
            return;
        }
        EnsureStarted();
        lock (Gate)
        {
            body = work;
            state = workState;
            count = itemCount;
            failure = null;
            Volatile.Write(ref next, 0);
            int helpers = Math.Min(WorkerCount, itemCount - 1);
            Volatile.Write(ref busyWorkers, helpers);
            Wake.Release(helpers);
            RunItems();
            SpinWait spin = default;
            while (Volatile.Read(ref busyWorkers) != 0) spin.SpinOnce(sleep1Threshold: -1);
            body = null;
            state = null;
            if (failure is { } e) throw new AggregateException("A CPU op failed on a worker thread.", e);
        }
    }

    private static void RunItems()
    {
        insideWorkItem = true;
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref next) - 1) < count) body(state, i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref failure, e, null);
            Volatile.Write(ref next, int.MaxValue / 2);
        }
        finally
        {
            insideWorkItem = false;
        }
    }

    private static void EnsureStarted()
    {
        if (Volatile.Read(ref started) != 0 || Interlocked.Exchange(ref started, 1) != 0) return;
        for (int w = 0; w < WorkerCount; w++)
        {
            new Thread(WorkerLoop) { IsBackground = true, Name = $"softprompt-cpu-{w}" }.Start();
        }
    }

    private static void WorkerLoop()
    {
        while (true)
        {
            Wake.Wait();
            RunItems();
            Interlocked.Decrement(ref busyWorkers);
        }
    }

    /// <summary>Splits <paramref name="total"/> items into about 4 chunks per thread (at least <paramref name="minChunk"/> items each).</summary>
    public static int ChunkCount(long total, long minChunk = 1)
    {
        long byWork = Math.Max(1, total / Math.Max(1, minChunk));
        return (int)Math.Min(byWork, Math.Max(1, 4 * (WorkerCount + 1)));
    }

    public static (int Start, int End) Chunk(int total, int chunks, int index)
    {
        long start = (long)total * index / chunks, end = (long)total * (index + 1) / chunks;
        return ((int)start, (int)end);
    }
}
