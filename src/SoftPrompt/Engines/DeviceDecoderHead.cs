using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// The LM head of a decoder-only device engine, run at target positions only and in chunks of rows so [targets, V]
/// logits never exist at once: logits = h·Wᵀ (W [V, d], the tied embedding or lm_head), fused cross-entropy, the
/// loss summed on the device (the one value a step waits for), and d(h) reduced onto the shared rows. Its tensors
/// are carved from the plan's arena.
/// </summary>
internal sealed class DeviceDecoderHead
{
    private readonly IComputeDevice device;
    private readonly int width, vocab;
    private readonly float[] lossReadback = new float[1];
    private readonly DeviceGreedyMatches greedy;

    public DeviceDecoderHead(ArenaCarver carve, int width, int vocab, int positions)
    {
        device = carve.Device;
        this.width = width;
        this.vocab = vocab;
        LogitRows = (int)Math.Clamp((1L << 26) / vocab, 16, Math.Max(16, positions));
        TargetHidden = carve.Take<float>("head.target_hidden", (long)LogitRows * width);
        Logits = carve.Take<float>("head.logits", (long)LogitRows * vocab);
        RowLoss = carve.Take<float>("head.row_loss", positions);
        Loss = carve.Take<float>("head.loss", 1);
        HostRowLoss = new float[positions];
        HostArgmaxMatches = new bool[positions];
        greedy = new DeviceGreedyMatches(carve, LogitRows);
    }

    public int LogitRows { get; }
    /// <summary>Hidden states gathered at one chunk of targets [LogitRows, d], and their logits [LogitRows, V].</summary>
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    /// <summary>Each target's cross-entropy [targets].</summary>
    public DeviceSpan<float> RowLoss { get; }
    public DeviceSpan<float> Loss { get; }
    public float[] HostRowLoss { get; }
    public bool[] HostArgmaxMatches { get; }

    /// <summary>
    /// Mean cross-entropy of the batch's targets from <paramref name="finalNorm"/> (shared rows [shared, d]). With a gradient:
    /// <paramref name="gradient"/> [shared, d] = d(weight·mean loss)/d(finalNorm), each target's contribution computed into
    /// <paramref name="targetGradient"/> ([targets, d] scratch) and summed onto its shared row (rows with empty inputs share
    /// their prompt's last position).
    /// </summary>
    public float Run(DecoderBatchInputs inputs, DeviceSpan<float> finalNorm, DeviceSpan<float> head, int sharedRows, DeviceSpan<float> gradient,
        DeviceSpan<float> targetGradient, float gradientWeight, bool withGradient, bool countGreedyMatches)
    {
        int d = width, count = inputs.TargetCount;
        var shared = inputs.SharedRows;
        float scale = withGradient ? gradientWeight / count : 0f;
        for (int start = 0; start < count; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, count - start);
            GatherRows.Launch(device, TargetHidden.Slice(0, (long)chunk * d), finalNorm, shared.TargetRows.Slice(start, chunk), chunk, d);
            var logits = Logits.Slice(0, (long)chunk * vocab);
            device.Gemm(chunk, vocab, d, 1f, new GemmOperand(TargetHidden, d), new GemmOperand(head, d, Transposed: true), 0f, new GemmOperand(logits, vocab));
            if (countGreedyMatches) greedy.Count(logits, chunk, vocab, inputs.HostTargetIds.AsSpan(start, chunk), HostArgmaxMatches.AsSpan(start, chunk));
            CrossEntropy.Launch(device, logits, RowLoss.Slice(start, chunk), inputs.TargetIds.Slice(start, chunk), chunk, vocab, scale);
            if (withGradient)
                device.Gemm(chunk, d, vocab, 1f, new GemmOperand(logits, vocab), new GemmOperand(head, d), 0f,
                    new GemmOperand(targetGradient.Slice((long)start * d, (long)chunk * d), d));
        }
        if (withGradient) GatherSumRows.Launch(device, gradient, targetGradient, shared.TargetStarts, shared.TargetIndex, sharedRows, d, accumulate: false);
        SumLoss.Launch(device, Loss, RowLoss.Slice(0, count), 1f / count);
        device.CopyToHost(Loss, lossReadback);
        return lossReadback[0];
    }

    /// <summary>After <see cref="Run"/>: each row's summed target log-likelihood (and greedy matches, when counted).</summary>
    public void ScoreRows(DecoderBatchInputs inputs, int rows, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches)
    {
        int count = inputs.TargetCount;
        var rowLoss = HostRowLoss.AsSpan(0, count);
        device.CopyToHost(RowLoss.Slice(0, count), rowLoss);
        rowLogLikelihood[..rows].Clear();
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches) rowGreedyMatches[..rows].Clear();
        for (int r = 0; r < count; r++)
        {
            rowLogLikelihood[inputs.HostTargetRow[r]] -= rowLoss[r];
            if (matches && HostArgmaxMatches[r]) rowGreedyMatches[inputs.HostTargetRow[r]]++;
        }
    }

    /// <summary>
    /// Logits [batch.Rows, V] at each row's last position, after a forward pass that left <paramref name="finalNorm"/>; with
    /// <paramref name="tokens"/> instead, only each row's argmax (decided on the device).
    /// </summary>
    public void NextTokenLogits(TokenBatch batch, DecoderBatchInputs inputs, DeviceSpan<float> finalNorm, DeviceSpan<float> head, Span<float> logits, Span<int> tokens = default)
    {
        int d = width;
        var shared = inputs.SharedRows;
        shared.UploadLastPositions(batch);
        for (int start = 0; start < batch.Rows; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, batch.Rows - start);
            GatherRows.Launch(device, TargetHidden.Slice(0, (long)chunk * d), finalNorm, shared.TargetRows.Slice(start, chunk), chunk, d);
            var chunkLogits = Logits.Slice(0, (long)chunk * vocab);
            device.Gemm(chunk, vocab, d, 1f, new GemmOperand(TargetHidden, d), new GemmOperand(head, d, Transposed: true), 0f, new GemmOperand(chunkLogits, vocab));
            if (tokens.IsEmpty) device.CopyToHost(chunkLogits, logits.Slice(start * vocab, chunk * vocab));
            else greedy.Argmax(chunkLogits, chunk, vocab, tokens.Slice(start, chunk));
        }
    }
}
