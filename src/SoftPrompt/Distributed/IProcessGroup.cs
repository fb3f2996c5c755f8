namespace SoftPrompt.Distributed;

/// <summary>
/// The processes that train one prompt together (data parallelism): each takes a shard of every batch, and the
/// collectives below make their prompt gradients one. World size 1 (<see cref="SingleProcess"/>) is the default and
/// makes every collective a copy. Collectives are called from one thread, in the same order on every rank.
/// </summary>
public interface IProcessGroup : IDisposable
{
    int Rank { get; }
    int Size { get; }
    /// <summary>Who started the processes ("Open MPI (mpirun)", "single process").</summary>
    string Launcher { get; }

    /// <summary>Every rank's <paramref name="mine"/> into <paramref name="all"/>, in rank order: [Size × mine.Length].</summary>
    void AllGather(ReadOnlySpan<double> mine, Span<double> all);
    void AllGather(ReadOnlySpan<byte> mine, Span<byte> all);
    /// <summary>Rank <paramref name="root"/>'s values into every rank's <paramref name="values"/>.</summary>
    void Broadcast(Span<double> values, int root = 0);
    void Broadcast(Span<float> values, int root = 0);
    void Broadcast(Span<byte> values, int root = 0);
    void Barrier();
    /// <summary>Ends every process of the group with <paramref name="exitCode"/> (a rank that fails must not leave the others waiting in a collective).</summary>
    void Abort(int exitCode);
}

/// <summary>World size 1: no launcher, no MPI library.</summary>
public sealed class SingleProcess : IProcessGroup
{
    public static SingleProcess Instance { get; } = new();

    public int Rank => 0;
    public int Size => 1;
    public string Launcher => "single process";

    public void AllGather(ReadOnlySpan<double> mine, Span<double> all) => mine.CopyTo(all);
    public void AllGather(ReadOnlySpan<byte> mine, Span<byte> all) => mine.CopyTo(all);
    public void Broadcast(Span<double> values, int root = 0) { }
    public void Broadcast(Span<float> values, int root = 0) { }
    public void Broadcast(Span<byte> values, int root = 0) { }
    public void Barrier() { }
    public void Abort(int exitCode) => Environment.Exit(exitCode);
    public void Dispose() { }
}
