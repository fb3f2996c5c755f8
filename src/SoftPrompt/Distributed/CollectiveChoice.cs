namespace SoftPrompt.Distributed;

/// <summary>
/// Which library a training run's group will sum gradients with, known from the device name before any model loads:
/// none for one process, NCCL for `cuda` (its library must load: a missing libnccl.so.2 is an error naming it and what
/// to install, before minutes of loading), MPI for `cpu` and `cuda-emulated`. <see cref="GradientAllReduce.For"/>
/// makes the same choice from the opened engine.
/// </summary>
public static class CollectiveChoice
{
    public static CollectiveBackend For(string device, int processes) => For(device, processes, Nccl.Candidates());

    /// <param name="ncclCandidates">Where libnccl is looked for (a test passes a file that does not exist).</param>
    internal static CollectiveBackend For(string device, int processes, IEnumerable<string> ncclCandidates)
    {
        if (processes == 1) return CollectiveBackend.None;
        if (device != "cuda") return CollectiveBackend.Mpi;
        Nccl.Load(ncclCandidates);
        return CollectiveBackend.Nccl;
    }

    /// <summary>One line for `train --dry-run`.</summary>
    public static string Describe(CollectiveBackend backend) => backend switch
    {
        CollectiveBackend.None => "no collective (one process)",
        CollectiveBackend.Mpi => "MPI all-gather of the gradient, summed on the host in rank order",
        _ => $"NCCL all-reduce of the device gradient on the engine's stream ({Nccl.LoadedFrom})",
    };
}
