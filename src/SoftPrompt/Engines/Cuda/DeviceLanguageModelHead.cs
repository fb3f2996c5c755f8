using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// The LM head of every device engine, run at target positions only and in chunks of rows so [targets, V] logits never
/// exist at once: logits = s·h·Wᵀ (W [V, d]: the tied embedding or lm_head; s: T5 v1.0's d^-0.5, else 1), fused
/// cross-entropy, the loss summed on the device (the one value a step waits for), and each target's d(h). The engine
/// says where its targets are (<see cref="SetTargets"/>: each one's id, batch row and the hidden row it is predicted
/// from) and folds the per-target gradients back onto its own rows. Its tensors are carved from the plan's arena.
/// Logit rows are padded to <see cref="LogitStride"/> (a multiple of 64 elements: GPT-2's V = 50257 becomes 50304, as llm.c
/// pads it) so every GEMM on them is aligned; the padding columns are never read as logits. A bf16 head weight carries zero
/// rows up to the stride (<see cref="UploadWeight"/>), and its GEMMs run over the padded width: N of the logits GEMM and K
/// of d(h)'s are then whole tiles (an odd V keeps cuBLAS off its fast kernels), the padding logits come out 0 and the loss
/// kernel writes their bf16 gradient as 0.
/// With a bf16 head weight (bf16 precision) it runs as PyTorch's bf16 autocast does: the gathered hidden rows scaled and rounded to
/// bf16, logits from a bf16 tensor-core GEMM in fp32, the loss in fp32, and d(logits) written in bf16 by the loss kernel
/// itself for the bf16 GEMM that makes d(h).
/// </summary>
internal sealed class DeviceLanguageModelHead
{
    private readonly IComputeDevice device;
    private readonly int width, vocab;
    private readonly float[] lossReadback = new float[1];
    private readonly int[] argmax;
    private readonly DeviceSpan<int> argmaxIndices;

    /// <param name="targets">Most targets (or decoding rows) one batch may have.</param>
    /// <param name="bf16">The head weight is bf16: carve the bf16 operands of its GEMMs.</param>
    public DeviceLanguageModelHead(ArenaCarver carve, int width, int vocab, int targets, bool bf16)
    {
        device = carve.Device;
        this.width = width;
        this.vocab = vocab;
        LogitStride = PaddedStride(vocab);
        // 256 MiB of logit rows at most (fp32 logits, and in bf16 their bf16 gradient beside them: a bf16 head costs no more).
        long bytesPerRow = (long)LogitStride * (sizeof(float) + (bf16 ? sizeof(ushort) : 0));
        LogitRows = (int)Math.Clamp((1L << 28) / bytesPerRow, 16, Math.Max(16, targets));
        TargetHidden = carve.Take<float>("head.target_hidden", bf16 ? 0 : (long)LogitRows * width);
        Logits = carve.Take<float>("head.logits", (long)LogitRows * LogitStride);
        TargetHiddenBf16 = carve.Take<ushort>("head.target_hidden_bf16", bf16 ? (long)LogitRows * width : 0);
        LogitGradientBf16 = carve.Take<ushort>("head.logit_gradient_bf16", bf16 ? (long)LogitRows * LogitStride : 0);
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

    /// <summary>The row stride of the logits: V rounded up to 64 elements (128 bytes of bf16).</summary>
    public static int PaddedStride(int vocab) => checked((vocab + 63) / 64 * 64);

    /// <summary>
    /// The head weight [V, d] of a family's weights: fp32 as stored, or bf16 with zero rows up to <see cref="PaddedStride"/>
    /// (a few hundred KiB at most), which the head's bf16 GEMMs run over.
    /// </summary>
    internal static DeviceMatrix UploadWeight(ArenaCarver carve, string name, long vocab, long width, TensorValues? values, bool bf16) =>
        carve.UploadMatrix(name, vocab * width, values, bf16, zeroPadding: bf16 ? (PaddedStride(checked((int)vocab)) - vocab) * width : 0);

    public int LogitRows { get; }
    public int LogitStride { get; }
    /// <summary>Hidden states gathered at one chunk of targets [LogitRows, d] (fp32 head), and their logits [LogitRows, LogitStride].</summary>
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    /// <summary>bf16 head only (else empty): the gathered hidden rows, scaled and rounded [LogitRows, d], and d(logits) [LogitRows, LogitStride].</summary>
    public DeviceSpan<ushort> TargetHiddenBf16 { get; }
    public DeviceSpan<ushort> LogitGradientBf16 { get; }
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
    public float Run(DeviceSpan<float> hidden, DeviceMatrix weight, float logitScale, DeviceSpan<float> targetGradient, float gradientWeight,
        bool withGradient, bool countGreedyMatches)
    {
        int d = width, count = TargetCount, stride = LogitStride;
        float scale = withGradient ? gradientWeight / count : 0f;
        int rowsPerChunk = BalancedChunk(count);
        for (int start = 0; start < count; start += rowsPerChunk)
        {
            int chunk = Math.Min(rowsPerChunk, count - start);
            var logits = ChunkLogits(hidden, weight, logitScale, start, chunk);
            if (countGreedyMatches)
            {
                RowArgmax.Launch(device, argmaxIndices, logits, chunk, vocab, stride);
                device.CopyToHost(argmaxIndices.Slice(0, chunk), argmax.AsSpan(0, chunk));
                for (int r = 0; r < chunk; r++) HostArgmaxMatches[start + r] = argmax[r] == HostTargetIds[start + r];
            }
            var lossRows = RowLoss.Slice(start, chunk);
            var targetIds = TargetIds.Slice(start, chunk);
            var chunkGradient = withGradient ? targetGradient.Slice((long)start * d, (long)chunk * d) : default;
            // logits = s·h·Wᵀ, so dh = s·dlogits·W.
            if (weight.IsBf16)
            {
                var logitGradient = withGradient ? LogitGradientBf16.Slice(0, logits.Length) : default;
                CrossEntropy.Launch(device, logits, lossRows, targetIds, chunk, vocab, stride, scale, logitGradient);
                if (withGradient)
                    device.GemmBf16(chunk, d, GemmColumns(weight), logitScale, new Bf16GemmOperand(logitGradient, stride), new Bf16GemmOperand(weight.Bf16, d), 0f, new GemmOperand(chunkGradient, d));
            }
            else
            {
                CrossEntropy.Launch(device, logits, lossRows, targetIds, chunk, vocab, stride, scale);
                if (withGradient)
                    device.Gemm(chunk, d, vocab, logitScale, new GemmOperand(logits, stride), new GemmOperand(weight.Fp32, d), 0f, new GemmOperand(chunkGradient, d));
            }
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
    /// into <paramref name="logits"/> (dense rows); with <paramref name="tokens"/> instead, only each row's argmax (decided on the device).
    /// </summary>
    public void NextTokens(DeviceSpan<float> hidden, DeviceMatrix weight, float logitScale, int rows, Span<float> logits, Span<int> tokens)
    {
        int rowsPerChunk = BalancedChunk(rows);
        for (int start = 0; start < rows; start += rowsPerChunk)
        {
            int chunk = Math.Min(rowsPerChunk, rows - start);
            var chunkLogits = ChunkLogits(hidden, weight, logitScale, start, chunk);
            if (tokens.IsEmpty)
            {
                // Row by row, dropping each row's padding: decoding asks for a few rows, and the host copy (V floats a row)
                // dominates either way; the GEMM keeps its one aligned layout.
                for (int r = 0; r < chunk; r++)
                    device.CopyToHost(chunkLogits.Slice((long)r * LogitStride, vocab), logits.Slice((start + r) * vocab, vocab));
            }
            else
            {
                RowArgmax.Launch(device, argmaxIndices, chunkLogits, chunk, vocab, LogitStride);
                device.CopyToHost(argmaxIndices.Slice(0, chunk), tokens.Slice(start, chunk));
            }
        }
    }

    /// <summary>
    /// Rows per chunk for <paramref name="count"/> rows: as few chunks as <see cref="LogitRows"/> allows, all of about one size
    /// (4080 targets in 889-row chunks: 5 × 816 rather than 4 × 889 and a 524-row tail, whose GEMMs ran at two thirds the speed).
    /// </summary>
    internal int BalancedChunk(int count)
    {
        if (count <= LogitRows) return Math.Max(count, 1);
        int chunks = (count + LogitRows - 1) / LogitRows;
        return (count + chunks - 1) / chunks;
    }

    /// <summary>Logits [chunk, LogitStride] (V used) of hidden rows [start, start + chunk).</summary>
    private DeviceSpan<float> ChunkLogits(DeviceSpan<float> hidden, DeviceMatrix weight, float logitScale, int start, int chunk)
    {
        int d = width;
        var rows = HiddenRows.Slice(start, chunk);
        var logits = Logits.Slice(0, (long)chunk * LogitStride);
        if (weight.IsBf16)
        {
            if (TargetHiddenBf16.Length == 0)
                throw new InvalidOperationException("The LM head weight is bf16 but its plan was carved for an fp32 head: carve the plan with bf16 = true (the engine's precision).");
            // Scaled before rounding, as PyTorch does (T5 v1.0's d^-0.5): the GEMM then multiplies by 1.
            var operand = TargetHiddenBf16.Slice(0, (long)chunk * d);
            HeadGatherBf16.Launch(device, operand, hidden, rows, chunk, d, logitScale);
            device.GemmBf16(chunk, GemmColumns(weight), d, 1f, new Bf16GemmOperand(operand, d), new Bf16GemmOperand(weight.Bf16, d, Transposed: true), 0f, new GemmOperand(logits, LogitStride));
        }
        else
        {
            var gathered = TargetHidden.Slice(0, (long)chunk * d);
            GatherRows.Launch(device, gathered, hidden, rows, chunk, d);
            device.Gemm(chunk, vocab, d, logitScale, new GemmOperand(gathered, d), new GemmOperand(weight.Fp32, d, Transposed: true), 0f, new GemmOperand(logits, LogitStride));
        }
        return logits;
    }

    /// <summary>The vocabulary width the head's GEMMs run over: <see cref="LogitStride"/> for a weight carrying the zero padding rows, else V.</summary>
    private int GemmColumns(DeviceMatrix weight)
    {
        if (weight.Length == (long)LogitStride * width) return LogitStride;
        if (weight.Length == (long)vocab * width) return vocab;
        throw new ArgumentException($"The LM head weight holds {weight.Length} elements; a [{vocab}, {width}] head needs {(long)vocab * width} (or {(long)LogitStride * width} with its zero padding rows).", nameof(weight));
    }

    /// <summary>
    /// Logits [n, V] (dense rows) of every row of <paramref name="hidden"/> [n, d] into <paramref name="logits"/>: the tests' full
    /// logits, outside any step (a bf16 head rounds a temporary scaled copy of the hidden rows, as the head's own GEMM does).
    /// </summary>
    public static void AllRowLogits(IComputeDevice device, DeviceSpan<float> hidden, DeviceMatrix weight, float logitScale, int n, int d, int vocab, DeviceSpan<float> logits)
    {
        if (!weight.IsBf16)
        {
            device.Gemm(n, vocab, d, logitScale, new GemmOperand(hidden, d), new GemmOperand(weight.Fp32, d, Transposed: true), 0f, new GemmOperand(logits, vocab));
            return;
        }
        using var operand = device.Allocate<ushort>((long)n * d);
        HeadGatherBf16.Launch(device, operand.Span, hidden.Slice(0, (long)n * d), default, n, d, logitScale);
        device.GemmBf16(n, vocab, d, 1f, new Bf16GemmOperand(operand.Span, d), new Bf16GemmOperand(weight.Bf16, d, Transposed: true), 0f, new GemmOperand(logits, vocab));
    }
}
