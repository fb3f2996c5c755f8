using SoftPrompt.Cuda;

namespace SoftPrompt.Distributed;

/// <summary>
/// An NCCL communicator over a process group, one GPU per process: rank 0 makes the unique id, the group broadcasts it
/// over MPI, every rank joins with ncclCommInitRank on its device's context. Sums float buffers in place on a device's
/// stream (<see cref="AllReduceSum"/>), queued like a kernel: no host wait.
/// <para>
/// Order: NCCL adds in the order its ring or tree visits the ranks, fixed for a given world size, topology and NCCL
/// version, so a run is reproducible run to run on the same machines; it is not rank order, so N ranks match one
/// process to float tolerance (as the MPI path does), and one rank's all-reduce is a copy.
/// </para>
/// </summary>
public sealed unsafe class NcclCommunicator : IDisposable
{
    private nint comm;

    private NcclCommunicator(nint comm, int rank, int size, int version)
    {
        this.comm = comm;
        Rank = rank;
        Size = size;
        Version = version;
    }

    public int Rank { get; }
    public int Size { get; }
    /// <summary>NCCL's version code (e.g. 22105 for 2.21.5).</summary>
    public int Version { get; }
    public static string? Library => Nccl.LoadedFrom;

    /// <summary>Joins every rank of <paramref name="group"/> (each calls this at the same point) on <paramref name="device"/>.</summary>
    public static NcclCommunicator Create(IProcessGroup group, CudaDevice device) => Create(group, device, Nccl.Candidates());

    internal static NcclCommunicator Create(IProcessGroup group, CudaDevice device, IEnumerable<string> libraryCandidates)
    {
        Nccl.Load(libraryCandidates);
        int version;
        Nccl.Check(Nccl.ncclGetVersion(&version), "ncclGetVersion");
        Nccl.UniqueId id;
        if (group.Rank == 0) Nccl.Check(Nccl.ncclGetUniqueId(&id), "ncclGetUniqueId");
        group.Broadcast(new Span<byte>(id.Bytes, Nccl.UniqueIdBytes));
        device.MakeCurrent();
        nint comm;
        Nccl.Check(Nccl.ncclCommInitRank(&comm, group.Size, id, group.Rank), $"ncclCommInitRank(rank {group.Rank} of {group.Size})");
        return new NcclCommunicator(comm, group.Rank, group.Size, version);
    }

    /// <summary>Every rank's <paramref name="values"/> summed into every rank's, queued on <paramref name="device"/>'s stream.</summary>
    public void AllReduceSum(CudaDevice device, DeviceSpan<float> values)
    {
        ObjectDisposedException.ThrowIf(comm == 0, this);
        if (values.Length == 0) return;
        device.MakeCurrent();
        void* buffer = (void*)values.Address;
        Nccl.Check(Nccl.ncclAllReduce(buffer, buffer, (nuint)values.Length, Nccl.Float32, Nccl.Sum, comm, device.StreamValue), $"ncclAllReduce({values.Length} floats)");
    }

    public void Dispose()
    {
        if (comm == 0) return;
        nint c = comm;
        comm = 0;
        Nccl.ncclCommDestroy(c);
    }
}
