using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// The device twin of <see cref="T5CpuActivations{T}"/>: everything the CUDA T5 engine keeps for one (rows, encoder
/// length, decoder length) capacity, carved out of one float and one int allocation, reused step after step. A batch
/// uses the leading rows·length part of each tensor (contiguous at its own lengths, like the CPU engine).
/// </summary>
internal sealed class T5DevicePlan : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<float> floats;
    private readonly DeviceBuffer<int> ints;
    private long floatOffset, intOffset;

    public T5DevicePlan(IComputeDevice device, T5Config config, int rows, int encoderLength, int decoderLength)
    {
        this.device = device;
        Rows = rows;
        EncoderLength = encoderLength;
        DecoderLength = decoderLength;
        int ne = rows * encoderLength, nd = rows * decoderLength, n = Math.Max(ne, nd), longest = Math.Max(encoderLength, decoderLength);
        int d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, heads = config.Heads;
        int gatedFf = config.IsGated ? ff : 0;
        LogitRows = Math.Clamp((1 << 22) / config.VocabSize, 16, Math.Max(16, nd));

        long perEncoder = A(ne * d) * 2 + A(ne) * 2 + A(ne * a) * 4 + A(rows * heads * encoderLength) + A(ne * ff) + A(ne * gatedFf);
        long perDecoder = A(nd * d) * 3 + A(nd) * 3 + A(nd * a) * 3 + A(rows * heads * decoderLength)
            + A(nd * a) * 2 + A(ne * a) * 2 + A(rows * heads * decoderLength) + A(nd * ff) + A(nd * gatedFf);
        long shared = A(ne * d) * 5 + A(ne) + A(nd * d) * 5 + A(nd) + A(n * d) + A(n * ff) * 2 + A(n * gatedFf) + A(n * a) * 4
            + A(rows * heads * longest) + A(longest * d) + A((long)LogitRows * d) + A((long)LogitRows * config.VocabSize) + A(nd) + A(1) + 64;
        floats = device.Allocate<float>(perEncoder * config.Layers + perDecoder * config.DecoderLayers + shared);
        ints = device.Allocate<int>(A(ne) + A(nd) * 3 + A(rows) * 2 + A(2 * encoderLength) + A(2 * decoderLength) + 64);
        Bytes = floats.Length * sizeof(float) + ints.Length * sizeof(int);

        Attention Att(int queries, int keys, int lse) => new(F(queries * a), F(keys * a), F(keys * a), F(queries * a), F(lse));
        Encoder = new EncoderLayer[config.Layers];
        for (int l = 0; l < Encoder.Length; l++)
            Encoder[l] = new EncoderLayer(F(ne * d), F(ne), Att(ne, ne, rows * heads * encoderLength), F(ne * d), F(ne), F(ne * ff), F(ne * gatedFf));
        Decoder = new DecoderLayer[config.DecoderLayers];
        for (int l = 0; l < Decoder.Length; l++)
            Decoder[l] = new DecoderLayer(F(nd * d), F(nd), Att(nd, nd, rows * heads * decoderLength), F(nd * d), F(nd),
                Att(nd, ne, rows * heads * decoderLength), F(nd * d), F(nd), F(nd * ff), F(nd * gatedFf));
        EncoderFinal = F(ne * d); EncoderFinalRstd = F(ne); EncoderOutput = F(ne * d);
        DecoderFinal = F(nd * d); DecoderFinalRstd = F(nd); DecoderOutput = F(nd * d);
        Norm = F(n * d); Wide = F(n * ff); GradientWide = F(n * ff); GradientLinear = F(n * gatedFf);
        GradientAttention = F(n * a); GradientQuery = F(n * a); GradientKey = F(n * a); GradientValue = F(n * a);
        AttentionScratch = F(rows * heads * longest);
        DecoderOutputGradient = F(nd * d); DecoderGradient = F(nd * d); EncoderOutputGradient = F(ne * d); EncoderGradient = F(ne * d);
        ZeroPositions = F(longest * d);
        TargetHidden = F((long)LogitRows * d); Logits = F((long)LogitRows * config.VocabSize); RowLoss = F(nd); Loss = F(1);
        device.Zero(ZeroPositions);
        GreedyMatches = new DeviceGreedyMatches(device, LogitRows);

        EncoderTokens = I(ne); DecoderTokens = I(nd); TargetPositions = I(nd); TargetIds = I(nd); PromptIndex = I(rows); EncoderLengths = I(rows);
        EncoderBuckets = I(2 * encoderLength); DecoderBuckets = I(2 * decoderLength);

        HostEncoderTokens = new int[ne]; HostDecoderTokens = new int[nd];
        HostTargetPositions = new int[nd]; HostTargetIds = new int[nd]; HostTargetRow = new int[nd]; HostRowLoss = new float[nd]; HostArgmaxMatches = new bool[nd];
        HostInputLengths = new int[rows]; HostTargetLengths = new int[rows]; HostEncoderLengths = new int[rows];
        HostEncoderBuckets = new int[2 * encoderLength]; HostDecoderBuckets = new int[2 * decoderLength];
    }

    private static long A(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<float> F(long count) { var s = floats.Slice(floatOffset, count); floatOffset += A(count); return s; }
    private DeviceSpan<int> I(long count) { var s = ints.Slice(intOffset, count); intOffset += A(count); return s; }

    public int Rows { get; }
    public int EncoderLength { get; }
    public int DecoderLength { get; }
    public int LogitRows { get; }
    public long Bytes { get; }
    public int TargetCount { get; set; }
    /// <summary>Lengths the uploaded bucket arrays were computed for (−1: none yet).</summary>
    public int EncoderBucketLength { get; set; } = -1;
    public int DecoderBucketLength { get; set; } = -1;

    /// <summary>q [nq, a], k and v [nk, a], attention output before the o projection [nq, a], logsumexp [rows, H, Tq].</summary>
    public readonly record struct Attention(DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceSpan<float> Value, DeviceSpan<float> Output, DeviceSpan<float> LogSumExp);
    public readonly record struct EncoderLayer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, Attention SelfAttention, DeviceSpan<float> Middle,
        DeviceSpan<float> Rstd2, DeviceSpan<float> Hidden, DeviceSpan<float> Linear);
    public readonly record struct DecoderLayer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, Attention SelfAttention, DeviceSpan<float> Middle1,
        DeviceSpan<float> Rstd2, Attention CrossAttention, DeviceSpan<float> Middle2, DeviceSpan<float> Rstd3, DeviceSpan<float> Hidden, DeviceSpan<float> Linear);

    public EncoderLayer[] Encoder { get; }
    public DecoderLayer[] Decoder { get; }
    public DeviceSpan<float> EncoderFinal { get; }
    public DeviceSpan<float> EncoderFinalRstd { get; }
    public DeviceSpan<float> EncoderOutput { get; }
    public DeviceSpan<float> DecoderFinal { get; }
    public DeviceSpan<float> DecoderFinalRstd { get; }
    public DeviceSpan<float> DecoderOutput { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> GradientWide { get; }
    public DeviceSpan<float> GradientLinear { get; }
    public DeviceSpan<float> GradientAttention { get; }
    public DeviceSpan<float> GradientQuery { get; }
    public DeviceSpan<float> GradientKey { get; }
    public DeviceSpan<float> GradientValue { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    public DeviceSpan<float> DecoderOutputGradient { get; }
    public DeviceSpan<float> DecoderGradient { get; }
    public DeviceSpan<float> EncoderOutputGradient { get; }
    public DeviceSpan<float> EncoderGradient { get; }
    /// <summary>Zeros [max length, d]: the position table embedding_forward adds (T5 has none).</summary>
    public DeviceSpan<float> ZeroPositions { get; }
    public DeviceSpan<float> TargetHidden { get; }
    public DeviceSpan<float> Logits { get; }
    public DeviceSpan<float> RowLoss { get; }
    public DeviceSpan<float> Loss { get; }

    public DeviceSpan<int> EncoderTokens { get; }
    public DeviceSpan<int> DecoderTokens { get; }
    public DeviceSpan<int> TargetPositions { get; }
    public DeviceSpan<int> TargetIds { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public DeviceSpan<int> EncoderLengths { get; }
    public DeviceSpan<int> EncoderBuckets { get; }
    public DeviceSpan<int> DecoderBuckets { get; }

    public int[] HostEncoderTokens { get; }
    public int[] HostDecoderTokens { get; }
    public int[] HostTargetPositions { get; }
    public int[] HostTargetIds { get; }
    public int[] HostTargetRow { get; }
    public float[] HostRowLoss { get; }
    public bool[] HostArgmaxMatches { get; }
    public int[] HostInputLengths { get; }
    public int[] HostTargetLengths { get; }
    public int[] HostEncoderLengths { get; }
    public int[] HostEncoderBuckets { get; }
    public int[] HostDecoderBuckets { get; }

    /// <summary>Exact-match evaluation: each target's argmax, decided on the device.</summary>
    public DeviceGreedyMatches GreedyMatches { get; }

    /// <summary>Uploads the relative-position buckets of the encoder (bidirectional) and decoder (causal) self-attention when the lengths changed.</summary>
    public void UploadBuckets(T5Config config, int encoderLength, int decoderLength)
    {
        if (EncoderBucketLength != encoderLength)
        {
            int count = 2 * encoderLength - 1;
            T5RelativeBuckets.Compute(encoderLength, encoderLength, bidirectional: true, config.RelativeBuckets, config.RelativeMaxDistance, HostEncoderBuckets);
            device.CopyToDevice<int>(HostEncoderBuckets.AsSpan(0, count), EncoderBuckets.Slice(0, count));
            EncoderBucketLength = encoderLength;
        }
        if (DecoderBucketLength != decoderLength)
        {
            int count = 2 * decoderLength - 1;
            T5RelativeBuckets.Compute(decoderLength, decoderLength, bidirectional: false, config.RelativeBuckets, config.RelativeMaxDistance, HostDecoderBuckets);
            device.CopyToDevice<int>(HostDecoderBuckets.AsSpan(0, count), DecoderBuckets.Slice(0, count));
            DecoderBucketLength = decoderLength;
        }
    }

    public void Dispose()
    {
        floats.Dispose();
        ints.Dispose();
        GreedyMatches.Dispose();
    }
}
