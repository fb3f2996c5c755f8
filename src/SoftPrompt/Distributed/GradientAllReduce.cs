using SoftPrompt.Cuda;
using SoftPrompt.Engines;

namespace SoftPrompt.Distributed;

/// <summary>What a training step adds up over its micro-batches, and over the processes of a group.</summary>
public record struct StepTotals(long Targets, double WeightedLoss, long Tokens, bool StopRequested);

/// <summary>Which library sums the prompt gradients of a group's processes.</summary>
public enum CollectiveBackend
{
    /// <summary>One process: nothing to sum.</summary>
    None,
    /// <summary>MPI all-gather to the host, added in rank order (cpu, cuda-emulated).</summary>
    Mpi,
    /// <summary>NCCL all-reduce of the device gradient on the engine's stream (cuda).</summary>
    Nccl,
}

/// <summary>
/// Makes every rank's prompt gradient the group's: each rank's engine holds the gradient of the SUM of its shard's
/// token losses (its micro-batches weighted by their target counts); this adds them up, with the target counts, losses,
/// tokens and stop requests of the step, and writes the sum back, so one optimizer step scaled by 1/(all targets)
/// equals the single-process step on the global batch.
/// <para>
/// MPI (<see cref="CollectiveBackend.Mpi"/>): each rank's values are all-gathered and added in rank order in double on
/// every rank, so the sum is bit-identical on all ranks and from run to run (an MPI reduction may add in an order of its
/// own choosing); the float gradients convert to double exactly and round to float once.
/// NCCL (<see cref="CollectiveBackend.Nccl"/>, a real GPU): the gradient is summed in place on the device in float by
/// ncclAllReduce, queued on the engine's stream before the optimizer step (no host copy, no wait), in NCCL's ring or
/// tree order: fixed for a given world size, topology and NCCL version, so reproducible run to run but not rank order
/// (see <see cref="NcclCommunicator"/>); the step's totals still go over MPI.
/// </para>
/// </summary>
public sealed class GradientAllReduce : IDisposable
{
    private const int Totals = 4;   // targets, weighted loss, tokens, stop flag after the gradient
    private readonly IProcessGroup group;
    private readonly float[] gradient;
    private readonly double[] mine;
    private readonly double[] all;
    private readonly NcclCommunicator? nccl;
    private readonly CudaDevice? device;

    public GradientAllReduce(IProcessGroup group, int gradientLength) : this(group, gradientLength, null, null) { }

    private GradientAllReduce(IProcessGroup group, int gradientLength, NcclCommunicator? nccl, CudaDevice? device)
    {
        this.group = group;
        this.nccl = nccl;
        this.device = device;
        int hostLength = nccl is null ? gradientLength : 0;
        gradient = new float[hostLength];
        mine = new double[hostLength + Totals];
        all = new double[(long)mine.Length * group.Size <= Array.MaxLength ? mine.Length * group.Size
            : throw new ArgumentException($"A prompt gradient of {gradientLength} values over {group.Size} ranks is too large to gather.")];
    }

    /// <summary>The backend for <paramref name="engine"/>: NCCL on a real GPU (joining the group's NCCL communicator, which every rank must do at the same point), MPI otherwise.</summary>
    public static GradientAllReduce For(IProcessGroup group, IPromptEngine engine, int gradientLength) =>
        engine is DeviceEngine { Device: CudaDevice gpu } ? OnDevice(group, gpu, gradientLength) : new GradientAllReduce(group, gradientLength);

    /// <summary>NCCL over <paramref name="group"/> on <paramref name="device"/>, even for one process (its all-reduce is a copy: the GPU test of the path).</summary>
    public static GradientAllReduce OnDevice(IProcessGroup group, CudaDevice device, int gradientLength) =>
        new(group, gradientLength, NcclCommunicator.Create(group, device), device);

    public CollectiveBackend Backend => nccl is null ? CollectiveBackend.Mpi : CollectiveBackend.Nccl;

    /// <summary>Sums the engine's gradient and <paramref name="local"/> over the group; the engine then holds the group's gradient.</summary>
    public StepTotals Reduce(IPromptEngine engine, StepTotals local)
    {
        int n = gradient.Length;
        if (nccl is not null)
        {
            var onDevice = engine as DeviceEngine ?? throw new InvalidOperationException("An NCCL all-reduce needs the CUDA engine it was made for.");
            nccl.AllReduceSum(device!, onDevice.PromptGradientOnDevice);
        }
        else
        {
            engine.ReadPromptGradient(gradient);
            for (int i = 0; i < n; i++) mine[i] = gradient[i];
        }
        mine[n] = local.Targets;
        mine[n + 1] = local.WeightedLoss;
        mine[n + 2] = local.Tokens;
        mine[n + 3] = local.StopRequested ? 1 : 0;
        group.AllGather(mine, all);
        var sum = new Span<double>(mine);
        sum.Clear();
        for (int r = 0; r < group.Size; r++)
        {
            var part = all.AsSpan(r * mine.Length, mine.Length);
            for (int i = 0; i < part.Length; i++) sum[i] += part[i];
        }
        if (nccl is null)
        {
            for (int i = 0; i < n; i++) gradient[i] = (float)sum[i];
            engine.WritePromptGradient(gradient);
        }
        return new StepTotals((long)sum[n], sum[n + 1], (long)sum[n + 2], sum[n + 3] > 0);
    }

    public void Dispose() => nccl?.Dispose();
}
