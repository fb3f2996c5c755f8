using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The device twin of <see cref="LlamaCpuActivations{T}"/>: everything the CUDA Llama engine keeps for one (rows,
/// sequence) capacity, carved out of one float and one int allocation, reused step after step (a step allocates nothing
/// on the device). A batch uses the leading rows·sequence part of each tensor.
/// </summary>
internal sealed class LlamaDevicePlan : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<float> floats;
    private readonly DeviceBuffer<int> ints;
    private long floatOffset, intOffset;

    public LlamaDevicePlan(IComputeDevice device, LlamaConfig config, int rows, int sequence)
    {
        this.device = device;
        Rows = rows;
        Sequence = sequence;
        long n = (long)rows * sequence, d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, heads = config.Heads;
        LogitRows = (int)Math.Clamp((1L << 26) / config.VocabSize, 16, Math.Max(16, n));
        long perLayer = A(n * d) * 2 + A(n) * 2 + A(n * a) * 4 + A(n * heads) + A(n * ff) * 2;
        long shared = A(n * d) * 5 + A(n) + A(n * kv) * 2 + A(n * ff) * 3 + A(n * a) * 4 + A(n * heads) + A(sequence * d)
            + A(LogitRows * d) + A(LogitRows * config.VocabSize) + A(n) + A(1);
        floats = device.Allocate<float>(perLayer * config.Layers + shared);
        ints = device.Allocate<int>(A(n) * 3 + A(rows));
        Bytes = floats.Length * sizeof(float) + ints.Length * sizeof(int);

        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
            Layers[l] = new Layer(Input: F(n * d), Rstd1: F(n), Query: F(n * a), Key: F(n * a), Value: F(n * a), Attention: F(n * a),
                LogSumExp: F(n * heads), Middle: F(n * d), Rstd2: F(n), Gate: F(n * ff), Up: F(n * ff));
        Final = F(n * d); FinalRstd = F(n); FinalNorm = F(n * d); Norm = F(n * d);
        KeyNarrow = F(n * kv); ValueNarrow = F(n * kv); Wide = F(n * ff);
        Gradient = F(n * d); GradientNext = F(n * d);
        GradientQuery = F(n * a); GradientKey = F(n * a); GradientValue = F(n * a); GradientAttention = F(n * a);
        GradientGate = F(n * ff); GradientUp = F(n * ff);
        AttentionScratch = F(n * heads);
        ZeroPositions = F(sequence * d);
        TargetHidden = F(LogitRows * d); Logits = F(LogitRows * config.VocabSize); RowLoss = F(n); Loss = F(1);
        device.Zero(ZeroPositions);
        Tokens = I(n); TargetPositions = I(n); TargetIds = I(n); PromptIndex = I(rows);
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
    public int Sequence { get; }
    public int LogitRows { get; }
    public long Bytes { get; }
    public int TargetCount { get; private set; }

    /// <summary>Query rotated and scaled by 1/√hd; Key rotated and Value, both repeated to every query head [n, Heads·hd].</summary>
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
    public DeviceSpan<float> GradientKey { get; }
    public DeviceSpan<float> GradientValue { get; }
    public DeviceSpan<float> GradientAttention { get; }
    public DeviceSpan<float> GradientGate { get; }
    public DeviceSpan<float> GradientUp { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Zeros [Sequence, d]: the embedding kernel's position table (Llama has none; RoPE rotates q and k instead).</summary>
    public DeviceSpan<float> ZeroPositions { get; }
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    public DeviceSpan<float> RowLoss { get; }
    public DeviceSpan<float> Loss { get; }
    public DeviceSpan<int> Tokens { get; }
    public DeviceSpan<int> TargetPositions { get; }
    public DeviceSpan<int> TargetIds { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public int[] HostTargetPositions { get; }
    public int[] HostTargetIds { get; }
    public int[] HostTargetRow { get; }
    public float[] HostRowLoss { get; }
    public bool[] HostArgmaxMatches { get; }

    /// <summary>Copies the batch's tokens, prompt index and target positions/ids to the device.</summary>
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
        device.CopyToDevice<int>(HostTargetPositions.AsSpan(0, count), TargetPositions.Slice(0, count));
        device.CopyToDevice<int>(HostTargetIds.AsSpan(0, count), TargetIds.Slice(0, count));
    }

    public void Dispose()
    {
        floats.Dispose();
        ints.Dispose();
    }
}
