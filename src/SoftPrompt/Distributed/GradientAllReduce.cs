using SoftPrompt.Engines;

namespace SoftPrompt.Distributed;

/// <summary>What a training step adds up over its micro-batches, and over the processes of a group.</summary>
public record struct StepTotals(long Targets, double WeightedLoss, long Tokens, bool StopRequested);

/// <summary>
/// Makes every rank's prompt gradient the group's: each rank's engine holds the gradient of the SUM of its shard's
/// token losses (its micro-batches weighted by their target counts); this adds them up, with the target counts, losses,
/// tokens and stop requests of the step, and writes the sum back, so one optimizer step scaled by 1/(all targets)
/// equals the single-process step on the global batch.
/// <para>
/// Deterministic: each rank's values are all-gathered and added in rank order in double on every rank, so the sum is
/// bit-identical on all ranks and from run to run (an MPI reduction may add in an order of its own choosing); the
/// float gradients convert to double exactly and round to float once.
/// </para>
/// </summary>
public sealed class GradientAllReduce
{
    private const int Totals = 4;   // targets, weighted loss, tokens, stop flag after the gradient
    private readonly IProcessGroup group;
    private readonly float[] gradient;
    private readonly double[] mine;
    private readonly double[] all;

    public GradientAllReduce(IProcessGroup group, int gradientLength)
    {
        this.group = group;
        gradient = new float[gradientLength];
        mine = new double[gradientLength + Totals];
        all = new double[(long)mine.Length * group.Size <= Array.MaxLength ? mine.Length * group.Size
            : throw new ArgumentException($"A prompt gradient of {gradientLength} values over {group.Size} ranks is too large to gather.")];
    }

    /// <summary>Sums the engine's gradient and <paramref name="local"/> over the group; the engine then holds the group's gradient.</summary>
    public StepTotals Reduce(IPromptEngine engine, StepTotals local)
    {
        int n = gradient.Length;
        engine.ReadPromptGradient(gradient);
        for (int i = 0; i < n; i++) mine[i] = gradient[i];
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
        for (int i = 0; i < n; i++) gradient[i] = (float)sum[i];
        engine.WritePromptGradient(gradient);
        return new StepTotals((long)sum[n], sum[n + 1], (long)sum[n + 2], sum[n + 3] > 0);
    }
}
