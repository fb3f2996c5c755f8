using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// The device memory of one (rows, positions) capacity: what the backward pass needs per layer, shared scratch,
/// and the small per-step inputs (tokens, prompt index, target positions and ids, the <see cref="SharedPromptRows"/>
/// maps). One float arena and one int arena, allocated once and reused every step, so a step allocates nothing on the
/// device. Per-layer activations hold the shared layout's rows (each prompt's positions once); attention works on the
/// full [rows, sequence] layout in the *Full scratch tensors, gathered from and reduced back to the shared rows.
/// </summary>
internal sealed class Gpt2DevicePlan : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<float> floats;
    private readonly DeviceBuffer<int> ints;
    private long floatOffset, intOffset;

    public Gpt2DevicePlan(IComputeDevice device, Gpt2Config config, int rows, int positions, PromptLayout layout)
    {
        this.device = device;
        Rows = rows;
        Positions = positions;
        long n = positions, c = config.Embedding, inner = config.Inner, heads = config.Heads;
        LogitRows = (int)Math.Clamp((1L << 26) / config.VocabSize, 16, Math.Max(16, n));
        long perLayer = Aligned(n * c) * 4 + Aligned(n) * 4 + Aligned(n * 3 * c) + Aligned(n * heads) + Aligned(n * inner);
        long shared = Aligned(n * c) * 6 + Aligned((n + 1) * c) + Aligned(n) * 3 + Aligned(n * 3 * c) + Aligned(n * inner) * 2 + Aligned(n * heads)
            + Aligned(n * 3 * c) * 2 + Aligned(n * c) * 2
            + Aligned((long)LogitRows * c) + Aligned((long)LogitRows * config.VocabSize) + Aligned(n) + Aligned(1);
        floats = device.Allocate<float>(perLayer * config.Layers + shared);
        ints = device.Allocate<int>(Aligned(n) * 2 + Aligned(rows));
        SharedRows = new DeviceSharedRows(device, rows, positions, layout);
        Bytes = floats.Length * sizeof(float) + ints.Length * sizeof(int) + SharedRows.Bytes;

        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
            Layers[l] = new Layer(Input: F(n * c), Mean1: F(n), Rstd1: F(n), Qkv: F(n * 3 * c), Attention: F(n * c), LogSumExp: F(n * heads),
                Middle: F(n * c), Mean2: F(n), Rstd2: F(n), Hidden: F(n * inner));
        Final = F(n * c); FinalMean = F(n); FinalRstd = F(n); FinalNorm = F(n * c);
        Norm = F(n * c); Projection = F((n + 1) * c); Wide = F(n * inner); Gradient = F(n * c); GradientNext = F(n * c);
        GradientQkv = F(n * 3 * c); GradientWide = F(n * inner); AttentionScratch = F(n * heads);
        QkvFull = F(n * 3 * c); GradientQkvFull = F(n * 3 * c); AttentionFull = F(n * c); GradientAttentionFull = F(n * c);
        TargetHidden = F((long)LogitRows * c); Logits = F((long)LogitRows * config.VocabSize); RowLoss = F(n); Loss = F(1);
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

    private static long Aligned(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<float> F(long count) { var s = floats.Slice(floatOffset, count); floatOffset += Aligned(count); return s; }
    private DeviceSpan<int> I(long count) { var s = ints.Slice(intOffset, count); intOffset += Aligned(count); return s; }

    public int Rows { get; }
    public int Positions { get; }
    public PromptLayout Layout => SharedRows.Layout;
    /// <summary>Where each prompt's positions live once per batch (the maps, on the host and the device).</summary>
    public DeviceSharedRows SharedRows { get; }
    public int LogitRows { get; }
    public long Bytes { get; }
    public int TargetCount { get; private set; }

    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Mean1, DeviceSpan<float> Rstd1, DeviceSpan<float> Qkv,
        DeviceSpan<float> Attention, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Mean2, DeviceSpan<float> Rstd2, DeviceSpan<float> Hidden);

    public Layer[] Layers { get; }
    public DeviceSpan<float> Final { get; }
    public DeviceSpan<float> FinalMean { get; }
    public DeviceSpan<float> FinalRstd { get; }
    public DeviceSpan<float> FinalNorm { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> Projection { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> Gradient { get; }
    public DeviceSpan<float> GradientNext { get; }
    public DeviceSpan<float> GradientQkv { get; }
    public DeviceSpan<float> GradientWide { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Full-layout [rows·sequence, ·] scratch for attention: its qkv and output gathered from the shared rows, and their gradients.</summary>
    public DeviceSpan<float> QkvFull { get; }
    public DeviceSpan<float> GradientQkvFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }
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
