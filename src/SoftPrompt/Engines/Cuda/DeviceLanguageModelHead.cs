using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// The LM head of every device engine, run at target positions only and in chunks of rows so [targets, V] logits never
/// exist at once: logits = s·h·Wᵀ (W [V, d]: the tied embedding or lm_head; s: T5 v1.0's d^-0.5, else 1), fused
/// cross-entropy, the loss summed on the device (the one value a step waits for), and each target's d(h). The engine
/// says where its targets are (<see cref="SetTargets"/>: each one's id, batch row and the hidden row it is predicted
/// from) and folds the per-target gradients back onto its own rows. Its tensors are carved from the plan's arena.
/// </summary>
internal sealed class DeviceLanguageModelHead
{
    private readonly IComputeDevice device;
    private readonly int width, vocab;
    private readonly float[] lossReadback = new float[1];
    private readonly int[] argmax;
    private readonly DeviceSpan<int> argmaxIndices;

    /// <param name="targets">Most targets (or decoding rows) one batch may have.</param>
    public DeviceLanguageModelHead(ArenaCarver carve, int width, int vocab, int targets)
    {
        device = carve.Device;
        this.width = width;
        this.vocab = vocab;
        LogitRows = (int)Math.Clamp((1L << 26) / vocab, 16, Math.Max(16, targets));
        TargetHidden = carve.Take<float>("head.target_hidden", (long)LogitRows * width);
        Logits = carve.Take<float>("head.logits", (long)LogitRows * vocab);
        RowLoss = carve.Take<float>("head.row_loss", targets);
        Loss = carve.Take<float>("head.loss", 1);
        HiddenRows = carve.Take<int>("head.hidden_rows", targets);
        TargetIds = carve.Take<int>("head.target_ids", targets);
        argmaxIndices = carve.Take<int>("head.argmax", LogitRows);
        HostTargetIds = new int[targets];
        HostTargetRow = new int[targets];
        HostHiddenRows = new int[targets];
        HostRowLoss = new float[targets];
        HostArgmaxMatches = new bool[targets];
        argmax = new int[LogitRows];
    }

    public int LogitRows { get; }
    /// <summary>Hidden states gathered at one chunk of targets [LogitRows, d], and their logits [LogitRows, V].</summary>
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    /// <summary>Each target's cross-entropy [targets].</summary>
    public DeviceSpan<float> RowLoss { get; }
    public DeviceSpan<float> Loss { get; }
    /// <summary>The hidden row each target (or, for decoding, each batch row's last position) is read from.</summary>
    public DeviceSpan<int> HiddenRows { get; }
    public DeviceSpan<int> TargetIds { get; }
    public int TargetCount { get; private set; }

    /// <summary>Filled by the engine, then <see cref="SetTargets"/>: each target's id, batch row and hidden row.</summary>
    public int[] HostTargetIds { get; }
    public int[] HostTargetRow { get; }
    public int[] HostHiddenRows { get; }
    private float[] HostRowLoss { get; }
    private bool[] HostArgmaxMatches { get; }

    /// <summary>Copies the first <paramref name="count"/> targets' ids and hidden rows up.</summary>
    public void SetTargets(int count)
    {
        TargetCount = count;
        device.CopyToDevice<int>(HostTargetIds.AsSpan(0, count), TargetIds.Slice(0, count));
        device.CopyToDevice<int>(HostHiddenRows.AsSpan(0, count), HiddenRows.Slice(0, count));
    }

    /// <summary>
    /// Mean cross-entropy of the targets, read from <paramref name="hidden"/> at their hidden rows. With a gradient:
    /// <paramref name="targetGradient"/> [targets, d] = d(gradientWeight·mean loss)/d(each target's hidden row), for the engine
    /// to sum or scatter onto its rows.
    /// </summary>
    public float Run(DeviceSpan<float> hidden, DeviceSpan<float> weight, float logitScale, DeviceSpan<float> targetGradient, float gradientWeight,
        bool withGradient, bool countGreedyMatches)
    {
        int d = width, count = TargetCount;
        float scale = withGradient ? gradientWeight / count : 0f;
        for (int start = 0; start < count; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, count - start);
            var logits = ChunkLogits(hidden, weight, logitScale, start, chunk);
            if (countGreedyMatches)
            {
                RowArgmax.Launch(device, argmaxIndices, logits, chunk, vocab);
                device.CopyToHost(argmaxIndices.Slice(0, chunk), argmax.AsSpan(0, chunk));
                for (int r = 0; r < chunk; r++) HostArgmaxMatches[start + r] = argmax[r] == HostTargetIds[start + r];
            }
            CrossEntropy.Launch(device, logits, RowLoss.Slice(start, chunk), TargetIds.Slice(start, chunk), chunk, vocab, scale);
            // logits = s·h·Wᵀ, so dh = s·dlogits·W.
            if (withGradient)
                device.Gemm(chunk, d, vocab, logitScale, new GemmOperand(logits, vocab), new GemmOperand(weight, d), 0f,
                    new GemmOperand(targetGradient.Slice((long)start * d, (long)chunk * d), d));
        }
        SumLoss.Launch(device, Loss, RowLoss.Slice(0, count), 1f / count);
        device.CopyToHost(Loss, lossReadback);
        return lossReadback[0];
    }

    /// <summary>After <see cref="Run"/>: each batch row's summed target log-likelihood (and greedy matches, when counted).</summary>
    public void ScoreRows(int rows, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches)
    {
        int count = TargetCount;
        var rowLoss = HostRowLoss.AsSpan(0, count);
        device.CopyToHost(RowLoss.Slice(0, count), rowLoss);
        rowLogLikelihood[..rows].Clear();
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches) rowGreedyMatches[..rows].Clear();
        for (int r = 0; r < count; r++)
        {
            rowLogLikelihood[HostTargetRow[r]] -= rowLoss[r];
            if (matches && HostArgmaxMatches[r]) rowGreedyMatches[HostTargetRow[r]]++;
        }
    }

    /// <summary>
    /// Decoding: the logits [rows, V] at the first <paramref name="rows"/> hidden rows (set with <see cref="SetTargets"/>)
    /// into <paramref name="logits"/>; with <paramref name="tokens"/> instead, only each row's argmax (decided on the device).
    /// </summary>
    public void NextTokens(DeviceSpan<float> hidden, DeviceSpan<float> weight, float logitScale, int rows, Span<float> logits, Span<int> tokens)
    {
        for (int start = 0; start < rows; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, rows - start);
            var chunkLogits = ChunkLogits(hidden, weight, logitScale, start, chunk);
            if (tokens.IsEmpty) device.CopyToHost(chunkLogits, logits.Slice(start * vocab, chunk * vocab));
            else
            {
                RowArgmax.Launch(device, argmaxIndices, chunkLogits, chunk, vocab);
                device.CopyToHost(argmaxIndices.Slice(0, chunk), tokens.Slice(start, chunk));
            }
        }
    }

    /// <summary>Logits [chunk, V] of hidden rows [start, start + chunk).</summary>
    private DeviceSpan<float> ChunkLogits(DeviceSpan<float> hidden, DeviceSpan<float> weight, float logitScale, int start, int chunk)
    {
        int d = width;
        GatherRows.Launch(device, TargetHidden.Slice(0, (long)chunk * d), hidden, HiddenRows.Slice(start, chunk), chunk, d);
        var logits = Logits.Slice(0, (long)chunk * vocab);
        device.Gemm(chunk, vocab, d, logitScale, new GemmOperand(TargetHidden, d), new GemmOperand(weight, d, Transposed: true), 0f, new GemmOperand(logits, vocab));
        return logits;
    }
}
