using System.Text;
using SoftPrompt.Distributed;

namespace SoftPrompt.Cli.Training;

/// <summary>
/// `train`, `eval`, `predict` or `ensemble` under mpirun or srun: joins the launcher's process group for the command's lifetime, and turns a failure on
/// any rank into MPI_Abort, so the other ranks do not wait forever in the next collective.
/// </summary>
internal static class GroupRun
{
    public static int Run(Func<IProcessGroup, int> body)
    {
        using var group = ProcessGroups.Join();
        if (group.Size == 1) return body(group);
        try
        {
            return body(group);
        }
        catch (Exception e)
        {
            string message = e is ArgumentException or InvalidOperationException or IOException or NotSupportedException or Checkpoints.CheckpointException or Text.DataException
                ? CliFlags.Translate(e.Message) : e.ToString();
            Console.Error.WriteLine($"error: rank {group.Rank} of {group.Size}: {message}");
            group.Abort(1);
            return 1;
        }
    }

    /// <summary>The group as `train --dry-run` prints it (rank 0): launcher, every rank's host, its rows of a batch and how it sums gradients.</summary>
    public static void Describe(IProcessGroup group, int batchSize, CollectiveBackend collective, TextWriter output)
    {
        const int HostBytes = 64, Backend = HostBytes - 1;   // the host name, and this rank's collective in the last byte
        var mine = new byte[HostBytes];
        Encoding.UTF8.GetBytes(Environment.MachineName.AsSpan(0, Math.Min(Environment.MachineName.Length, HostBytes / 4)), mine);
        mine[Backend] = (byte)collective;
        var hosts = new byte[HostBytes * group.Size];
        group.AllGather(mine, hosts);
        if (group.Rank != 0) return;
        string library = group is MpiProcessGroup mpi ? $", {mpi.Library}" : "";
        output.WriteLine($"process group: {group.Size} process{(group.Size == 1 ? "" : "es")} ({group.Launcher}{library}); each batch of {batchSize} examples splits {BatchShard.Describe(batchSize, group.Size)}");
        for (int r = 0; r < group.Size; r++)
        {
            var shard = new BatchShard(r, group.Size);
            string host = Encoding.UTF8.GetString(hosts, r * HostBytes, Backend).TrimEnd('\0');
            int start = shard.Start(batchSize), count = shard.Count(batchSize);
            string sums = CollectiveChoice.Describe((CollectiveBackend)hosts[r * HostBytes + Backend]);
            output.WriteLine($"  rank {r} on {host}: rows {start}..{start + count - 1} of each batch; gradients: {sums}{(r == 0 ? "; writes --out, metrics, plots, checkpoints" : "")}");
        }
        if (batchSize < group.Size) output.WriteLine($"  batch size {batchSize} is smaller than {group.Size} processes: raise --batch-size to at least {group.Size} or start fewer processes");
    }
}
