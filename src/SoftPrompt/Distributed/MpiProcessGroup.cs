namespace SoftPrompt.Distributed;

/// <summary>
/// MPI_COMM_WORLD as a process group. Joining initializes MPI (funneled: the joining thread makes every call) and
/// checks that MPI agrees with the launcher's environment; disposing finalizes it.
/// </summary>
public sealed unsafe class MpiProcessGroup : IProcessGroup
{
    private readonly OpenMpi.Handles mpi;
    private bool finalized;

    private MpiProcessGroup(LaunchedRank launched)
    {
        mpi = OpenMpi.Symbols;
        int initialized;
        OpenMpi.Check(OpenMpi.MPI_Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0) OpenMpi.InitFunneled();
        int rank, size;
        OpenMpi.Check(OpenMpi.MPI_Comm_rank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        OpenMpi.Check(OpenMpi.MPI_Comm_size(mpi.CommWorld, &size), "MPI_Comm_size");
        if (rank != launched.Rank || size != launched.Size)
            throw new MpiException($"{launched.Launcher} announced rank {launched.Rank} of {launched.Size}, but MPI_COMM_WORLD has rank {rank} of {size}; start every process with the same launcher (mpirun or srun with Open MPI).");
        Rank = rank;
        Size = size;
        Launcher = launched.Launcher;
    }

    public static MpiProcessGroup Join(LaunchedRank launched) => new(launched);

    public int Rank { get; }
    public int Size { get; }
    public string Launcher { get; }
    public string Library => mpi.Library;

    public void AllGather(ReadOnlySpan<double> mine, Span<double> all)
    {
        RequireGatherLength(mine.Length, all.Length);
        fixed (double* send = mine, receive = all)
            OpenMpi.Check(OpenMpi.MPI_Allgather(send, mine.Length, mpi.Double, receive, mine.Length, mpi.Double, mpi.CommWorld), "MPI_Allgather");
    }

    public void AllGather(ReadOnlySpan<byte> mine, Span<byte> all)
    {
        RequireGatherLength(mine.Length, all.Length);
        fixed (byte* send = mine, receive = all)
            OpenMpi.Check(OpenMpi.MPI_Allgather(send, mine.Length, mpi.Byte, receive, mine.Length, mpi.Byte, mpi.CommWorld), "MPI_Allgather");
    }

    public void Broadcast(Span<double> values, int root = 0)
    {
        fixed (double* buffer = values)
            OpenMpi.Check(OpenMpi.MPI_Bcast(buffer, values.Length, mpi.Double, root, mpi.CommWorld), "MPI_Bcast");
    }

    public void Broadcast(Span<float> values, int root = 0)
    {
        fixed (float* buffer = values)
            OpenMpi.Check(OpenMpi.MPI_Bcast(buffer, values.Length, mpi.Float, root, mpi.CommWorld), "MPI_Bcast");
    }

    public void Broadcast(Span<byte> values, int root = 0)
    {
        fixed (byte* buffer = values)
            OpenMpi.Check(OpenMpi.MPI_Bcast(buffer, values.Length, mpi.Byte, root, mpi.CommWorld), "MPI_Bcast");
    }

    public void Barrier() => OpenMpi.Check(OpenMpi.MPI_Barrier(mpi.CommWorld), "MPI_Barrier");

    public void Abort(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        OpenMpi.MPI_Abort(mpi.CommWorld, exitCode);
        Environment.Exit(exitCode);   // MPI_Abort does not return; this is for a library that did
    }

    public void Dispose()
    {
        if (finalized) return;
        finalized = true;
        int done;
        if (OpenMpi.MPI_Finalized(&done) == 0 && done == 0) OpenMpi.Check(OpenMpi.MPI_Finalize(), "MPI_Finalize");
    }

    private void RequireGatherLength(int mine, int all)
    {
        if ((long)mine * Size != all) throw new ArgumentException($"An all-gather of {mine} values from {Size} ranks needs {(long)mine * Size}, the destination holds {all}.");
    }
}
