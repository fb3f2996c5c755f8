namespace SoftPrompt.Distributed;

/// <summary>
/// This process's place in a job as its launcher announced it in the environment, before any MPI library is loaded:
/// Open MPI's mpirun (OMPI_COMM_WORLD_RANK/SIZE), MPICH/Intel MPI's Hydra (PMI_RANK/SIZE), or a Slurm job step
/// started by srun (SLURM_PROCID with SLURM_STEP_NUM_TASKS). Knowing the world size from the environment lets a
/// single process (no launcher, or a launcher of one) run without ever loading libmpi.
/// </summary>
public sealed record LaunchedRank(int Rank, int Size, string Launcher)
{
    /// <summary>The rank announced by the current process's environment; null when no launcher started it.</summary>
    public static LaunchedRank? FromEnvironment() => Detect(name => Environment.GetEnvironmentVariable(name));

    /// <summary>The rank announced by <paramref name="variable"/> (a lookup of environment variables); null when none is.</summary>
    public static LaunchedRank? Detect(Func<string, string?> variable)
    {
        return Read("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI (mpirun)")
            ?? Read("PMI_RANK", "PMI_SIZE", "PMI (mpiexec)")
            // Inside `sbatch -n 4 script.sh` the script itself sees SLURM_NTASKS=4 and SLURM_PROCID=0 but is one process;
            // only a job step (srun) sets SLURM_STEP_ID and the step's own task count.
            ?? (variable("SLURM_STEP_ID") is null ? null : Read("SLURM_PROCID", variable("SLURM_STEP_NUM_TASKS") is null ? "SLURM_NTASKS" : "SLURM_STEP_NUM_TASKS", "Slurm (srun)"));

        LaunchedRank? Read(string rankName, string sizeName, string launcher)
        {
            string? rankText = variable(rankName), sizeText = variable(sizeName);
            if (rankText is null && sizeText is null) return null;
            if (!int.TryParse(rankText, out int rank) || !int.TryParse(sizeText, out int size) || size < 1 || rank < 0 || rank >= size)
                throw new InvalidOperationException($"The launcher's environment is inconsistent: {rankName}={rankText ?? "(unset)"}, {sizeName}={sizeText ?? "(unset)"}; start the command with mpirun or srun, or unset those variables.");
            return new LaunchedRank(rank, size, launcher);
        }
    }
}
