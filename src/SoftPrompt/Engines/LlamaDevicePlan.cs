using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The device twin of <see cref="LlamaCpuActivations{T}"/>: everything the CUDA Llama engine keeps for one (rows,
/// positions) capacity, carved out of one float and one int allocation, reused step after step (a step allocates nothing
/// on the device). Per-layer activations hold the shared layout's rows (each prompt's positions once,
/// <see cref="SharedPromptRows"/>); attention works on the full [rows, sequence] layout in the *Full scratch tensors.
/// </summary>
internal sealed class LlamaDevicePlan : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<float> floats;
    private readonly DeviceBuffer<int> ints;
    private long floatOffset, intOffset;

    public LlamaDevicePlan(IComputeDevice device, LlamaConfig config, int rows, int positions, int sequence, PromptLayout layout)
    {
        this.device = device;
        Rows = rows;
        Positions = positions;
        Sequence = sequence;
        long n = positions, d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, heads = config.Heads;
        LogitRows = (int)Math.Clamp((1L << 26) / config.VocabSize, 16, Math.Max(16, n));
        long perLayer = A(n * d) * 2 + A(n) * 2 + A(n * a) * 2 + A(n * kv) * 2 + A(n * heads) + A(n * ff) * 2;
        long shared = A(n * d) * 5 + A(n) + A(n * kv) * 2 + A(n * ff) * 3 + A(n * a) + A((n + 1) * a) + A(n * heads) + A(sequence * d)
            + A(n * a) * 8 + A(n * kv) * 2 + A(n * d)
            + A(LogitRows * d) + A(LogitRows * config.VocabSize) + A(n) + A(1);
        floats = device.Allocate<float>(perLayer * config.Layers + shared);
        ints = device.Allocate<int>(A(n) * 2 + A(rows));
        SharedRows = new DeviceSharedRows(device, rows, positions, layout);
        Bytes = floats.Length * sizeof(float) + ints.Length * sizeof(int) + SharedRows.Bytes;

        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
            Layers[l] = new Layer(Input: F(n * d), Rstd1: F(n), Query: F(n * a), Key: F(n * kv), Value: F(n * kv), Attention: F(n * a),
                LogSumExp: F(n * heads), Middle: F(n * d), Rstd2: F(n), Gate: F(n * ff), Up: F(n * ff));
        Final = F(n * d); FinalRstd = F(n); FinalNorm = F(n * d); Norm = F(n * d);
        KeyNarrow = F(n * kv); ValueNarrow = F(n * kv); Wide = F(n * ff);
        Gradient = F(n * d); GradientNext = F(n * d);
        GradientQuery = F(n * a); GradientAttention = F((n + 1) * a);
        GradientGate = F(n * ff); GradientUp = F(n * ff);
        AttentionScratch = F(n * heads);
        ZeroPositions = F(sequence * d);
        QueryFull = F(n * a); KeyFull = F(n * a); ValueFull = F(n * a); AttentionFull = F(n * a); GradientAttentionFull = F(n * a);
        GradientQueryFull = F(n * a); GradientKeyFull = F(n * a); GradientValueFull = F(n * a);
        KeyNarrowFull = F(n * kv); ValueNarrowFull = F(n * kv); FullScratch = F(n * d);
        TargetHidden = F(LogitRows * d); Logits = F(LogitRows * config.VocabSize); RowLoss = F(n); Loss = F(1);
        device.Zero(ZeroPositions);
        Tokens = I(n); TargetIds = I(n); PromptIndex = I(rows);
        HostTargetPositions = new int[n];
        HostTargetIds = new int[n];
        HostTargetRow = new int[n];
        HostRowLoss = new float[n];
        HostArgmaxMatches = new bool[n];
    }

    private float[] hostLogits = [];

    /// <summary>Host staging for evaluation-only logit reads, grown on demand.</summary>
    public Span<float> HostLogits(int count)
    {
        if (hostLogits.Length < count) hostLogits = new float[count];
        return hostLogits.AsSpan(0, count);
    }

    private static long A(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<float> F(long count) { var s = floats.Slice(floatOffset, count); floatOffset += A(count); return s; }
    private DeviceSpan<int> I(long count) { var s = ints.Slice(intOffset, count); intOffset += A(count); return s; }

    public int Rows { get; }
    /// <summary>Most rows·sequence positions a batch may have.</summary>
    public int Positions { get; }
    /// <summary>Longest sequence a batch may have (the zero position table's length).</summary>
    public int Sequence { get; }
    public PromptLayout Layout => SharedRows.Layout;
    /// <summary>Where each prompt's positions live once per batch (the maps, on the host and the device).</summary>
    public DeviceSharedRows SharedRows { get; }
    public int LogitRows { get; }
    public long Bytes { get; }
    public int TargetCount { get; private set; }

    /// <summary>Shared rows: the q, k, v projections before RoPE (k and v at their own kv width), attention output, the SwiGLU branches.</summary>
    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, DeviceSpan<float> Query, DeviceSpan<float> Key,
        DeviceSpan<float> Value, DeviceSpan<float> Attention, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Rstd2,
        DeviceSpan<float> Gate, DeviceSpan<float> Up);

    public Layer[] Layers { get; }
    public DeviceSpan<float> Final { get; }
    public DeviceSpan<float> FinalRstd { get; }
    public DeviceSpan<float> FinalNorm { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> KeyNarrow { get; }
    public DeviceSpan<float> ValueNarrow { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> Gradient { get; }
    public DeviceSpan<float> GradientNext { get; }
    public DeviceSpan<float> GradientQuery { get; }
    public DeviceSpan<float> GradientAttention { get; }
    public DeviceSpan<float> GradientGate { get; }
    public DeviceSpan<float> GradientUp { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Full-layout scratch for attention: rotated (and scaled) q, rotated k and v repeated to every query head, their narrow forms, the output, and gradients.</summary>
    public DeviceSpan<float> QueryFull { get; }
    public DeviceSpan<float> KeyFull { get; }
    public DeviceSpan<float> ValueFull { get; }
    public DeviceSpan<float> KeyNarrowFull { get; }
    public DeviceSpan<float> ValueNarrowFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }
    public DeviceSpan<float> GradientQueryFull { get; }
    public DeviceSpan<float> GradientKeyFull { get; }
    public DeviceSpan<float> GradientValueFull { get; }
    /// <summary>[rows·sequence, d]: the full-layout embeddings at the start of a step, every target's head gradient at its end.</summary>
    public DeviceSpan<float> FullScratch { get; }
    /// <summary>Zeros [Sequence, d]: the embedding kernel's position table (Llama has none; RoPE rotates q and k instead).</summary>
    public DeviceSpan<float> ZeroPositions { get; }
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    public DeviceSpan<float> RowLoss { get; }
    public DeviceSpan<float> Loss { get; }
    public DeviceSpan<int> Tokens { get; }
    public DeviceSpan<int> TargetIds { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public int[] HostTargetPositions { get; }
    public int[] HostTargetIds { get; }
    public int[] HostTargetRow { get; }
    public float[] HostRowLoss { get; }
    public bool[] HostArgmaxMatches { get; }

    /// <summary>Copies the batch's tokens, prompt index, target ids and the shared-row maps (with the targets' shared rows) to the device.</summary>
    public void Upload(TokenBatch batch)
    {
        int seq = batch.SequenceLength, n = batch.Rows * seq, count = 0;
        for (int pos = 0; pos < n; pos++)
        {
            int target = batch.Targets[pos];
            if (target == TokenBatch.Ignore) continue;
            HostTargetPositions[count] = pos;
            HostTargetIds[count] = target;
            HostTargetRow[count] = pos / seq;
            count++;
        }
        TargetCount = count;
        int tokens = batch.Rows * batch.TokenLength;
        device.CopyToDevice<int>(batch.Tokens.AsSpan(0, tokens), Tokens.Slice(0, tokens));
        device.CopyToDevice<int>(batch.PromptIndex.AsSpan(0, batch.Rows), PromptIndex.Slice(0, batch.Rows));
        device.CopyToDevice<int>(HostTargetIds.AsSpan(0, count), TargetIds.Slice(0, count));
        SharedRows.Upload(batch, HostTargetPositions.AsSpan(0, count));
    }

    public void Dispose()
    {
        floats.Dispose();
        ints.Dispose();
        SharedRows.Dispose();
    }
}
