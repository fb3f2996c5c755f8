using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// The device twin of <see cref="T5CpuActivations{T}"/>: everything the CUDA T5 engine keeps for one (rows, encoder
/// length, decoder length) capacity, carved out of one arena, reused step after step. A batch
/// uses the leading rows·length part of each tensor (contiguous at its own lengths, like the CPU engine).
/// </summary>
internal sealed class T5DevicePlan : IDisposable
{
    private readonly IComputeDevice device;

    /// <param name="bf16">The weights are bf16: hold a bf16 copy of the largest GEMM activation operand.</param>
    /// <param name="recomputes">Keep each layer's input only; its other saved tensors live in one set per stack every layer reuses.</param>
    public static T5DevicePlan Allocate(IComputeDevice device, T5Config config, int rows, int encoderLength, int decoderLength, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Allocate(device, "t5 plan", carve => new T5DevicePlan(carve, config, rows, encoderLength, decoderLength, bf16, recomputes));

    /// <summary>The plan's layout and size without a device.</summary>
    public static T5DevicePlan Measure(T5Config config, int rows, int encoderLength, int decoderLength, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Measure("t5 plan", carve => new T5DevicePlan(carve, config, rows, encoderLength, decoderLength, bf16, recomputes));

    private T5DevicePlan(ArenaCarver carve, T5Config config, int rows, int encoderLength, int decoderLength, bool bf16, bool recomputes)
    {
        device = carve.Device;
        Arena = carve.Arena;
        Recomputes = recomputes;
        Rows = rows;
        EncoderLength = encoderLength;
        DecoderLength = decoderLength;
        long ne = (long)rows * encoderLength, nd = (long)rows * decoderLength, n = Math.Max(ne, nd), longest = Math.Max(encoderLength, decoderLength);
        long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, heads = config.Heads;
        long gatedFf = config.IsGated ? ff : 0;
        DeviceSpan<float> F(string name, long count) => carve.Take<float>(name, count);
        DeviceSpan<int> I(string name, long count) => carve.Take<int>(name, count);
        // The feed-forward's pre-activations: fp32, or in bf16 precision bf16 GEMM outputs kept in bf16.
        FeedForwardSaved Ff(string at, long rowsLength) => new(F(at + "ff.hidden", bf16 ? 0 : rowsLength * ff), F(at + "ff.linear", bf16 ? 0 : rowsLength * gatedFf),
            carve.Take<ushort>(at + "ff.hidden_bf16", bf16 ? rowsLength * ff : 0), carve.Take<ushort>(at + "ff.linear_bf16", bf16 ? rowsLength * gatedFf : 0));
        // q, k, v and the attention output: fp32, or in bf16 precision bf16 GEMM outputs (and a bf16 attention output) kept in bf16.
        // Self-attention's q, k and v are one [n, 3a] GEMM output; cross-attention's q [nd, a] and k, v [ne, 2a] two.
        DeviceSpan<ushort> H(string name, long count) => carve.Take<ushort>(name + "_bf16", bf16 ? count : 0);
        DeviceSpan<float> Fp32(string name, long count) => F(name, bf16 ? 0 : count);
        Projections<T> Self<T>(DeviceSpan<T> qkv) where T : unmanaged => new(true, qkv, default, default, (int)a);
        Projections<T> Cross<T>(DeviceSpan<T> q, DeviceSpan<T> kv) where T : unmanaged => new(false, default, q, kv, (int)a);
        Attention SelfAtt(string at, long length)
        {
            long n = rows * length;
            return new(Self(Fp32(at + "qkv", n * 3 * a)), Self(H(at + "qkv", n * 3 * a)), Fp32(at + "output", n * a), H(at + "output", n * a),
                F(at + "logsumexp", rows * heads * length));
        }
        Attention CrossAtt(string at)
        {
            return new(Cross(Fp32(at + "q", nd * a), Fp32(at + "kv", ne * 2 * a)), Cross(H(at + "q", nd * a), H(at + "kv", ne * 2 * a)),
                Fp32(at + "output", nd * a), H(at + "output", nd * a), F(at + "logsumexp", rows * heads * decoderLength));
        }

        carve.Kind = DeviceMemoryKind.Activations;
        EncoderLayer SavedEncoder(int? layer)
        {
            string at = RecomputedLayers.Prefix("encoder.block", layer);
            return new(default, F(at + "self.rstd", ne), SelfAtt(at + "self.", encoderLength), F(at + "middle", ne * d),
                F(at + "ff.rstd", ne), Ff(at, ne));
        }
        DecoderLayer SavedDecoder(int? layer)
        {
            string at = RecomputedLayers.Prefix("decoder.block", layer);
            return new(default, F(at + "self.rstd", nd), SelfAtt(at + "self.", decoderLength), F(at + "middle1", nd * d),
                F(at + "cross.rstd", nd), CrossAtt(at + "cross."), F(at + "middle2", nd * d), F(at + "ff.rstd", nd), Ff(at, nd));
        }
        Encoder = RecomputedLayers.Carve(config.Layers, recomputes, l => F($"encoder.block.{l}.input", ne * d), SavedEncoder, (saved, input) => saved with { Input = input });
        Decoder = RecomputedLayers.Carve(config.DecoderLayers, recomputes, l => F($"decoder.block.{l}.input", nd * d), SavedDecoder, (saved, input) => saved with { Input = input });
        EncoderFinal = F("encoder.final", ne * d); EncoderFinalRstd = F("encoder.final_layer_norm.rstd", ne); 
        // Only the decoder's cross-attention k/v GEMMs read the encoder's output (two per decoder layer): in bf16 the final norm
        // writes it once in bf16 for all of them.
        EncoderOutput = F("encoder.output", bf16 ? 0 : ne * d); EncoderOutputBf16 = carve.Take<ushort>("encoder.output_bf16", bf16 ? ne * d : 0);
        DecoderFinal = F("decoder.final", nd * d); DecoderFinalRstd = F("decoder.final_layer_norm.rstd", nd); DecoderOutput = F("decoder.output", nd * d);

        carve.Kind = DeviceMemoryKind.Workspace;
        // In bf16 the activation output goes straight into bf16_operands (wo's GEMM is its only reader): no fp32 wide buffer.
        Norm = F("norm", n * d); Wide = F("wide", bf16 ? 0 : n * ff); GradientWide = F("gradient_wide", n * ff); GradientLinear = F("gradient_linear", bf16 ? 0 : n * gatedFf);
        // In bf16 the activation's input gradients are only wi's (wi_0's, wi_1's) input-gradient GEMM operands: d(hidden)
        // goes into bf16_operands, d(linear) into its own bf16 buffer.
        GradientLinearBf16 = carve.Take<ushort>("gradient_linear_bf16", bf16 ? n * gatedFf : 0);
        // d(q, k, v) laid out as the forward's projections: self-attention's [n, 3a]; cross-attention's dq [nd, a], then dk, dv [ne, 2a].
        GradientAttention = F("gradient_attention", n * a); GradientProjections = F("gradient_qkv", Math.Max(n * 3 * a, nd * a + ne * 2 * a));
        // In bf16 the residual gradient's copy each norm's backward rounds for the o / wo input-gradient GEMM that reads it next.
        ResidualGradientBf16 = carve.Take<ushort>("residual_gradient_bf16", bf16 ? n * d : 0);
        AttentionScratch = F("attention_scratch", rows * heads * longest);
        DecoderOutputGradient = F("gradient_decoder_output", nd * d); DecoderGradient = F("gradient_decoder", nd * d);
        EncoderOutputGradient = F("gradient_encoder_output", ne * d); EncoderGradient = F("gradient_encoder", ne * d);
        ZeroPositions = carve.Zeroed<float>("zero_positions", longest * d);
        Head = new DeviceLanguageModelHead(carve, config.Embedding, config.VocabSize, (int)nd, bf16);
        // A GEMM's activation operand: [n, d], [n, 3a] or [n, ff] rows of either stack.
        Bf16Operands = carve.Take<ushort>("bf16_operands", bf16 ? n * Math.Max(d, Math.Max(3 * a, ff)) : 0);

        EncoderTokens = I("encoder_tokens", ne); DecoderTokens = I("decoder_tokens", nd);
        PromptIndex = I("prompt_index", rows); EncoderLengths = I("encoder_lengths", rows);
        EncoderBuckets = I("encoder_buckets", 2L * encoderLength); DecoderBuckets = I("decoder_buckets", 2L * decoderLength);

        HostEncoderTokens = new int[ne]; HostDecoderTokens = new int[nd];
        HostInputLengths = new int[rows]; HostTargetLengths = new int[rows]; HostEncoderLengths = new int[rows];
        HostEncoderBuckets = new int[2 * encoderLength]; HostDecoderBuckets = new int[2 * decoderLength];
    }

    /// <summary>A plan for a batch of these lengths, grown to cover <paramref name="current"/> so alternating shapes settle on one plan.</summary>
    public static (int Rows, int EncoderLength, int DecoderLength) Capacity(int rows, int encoderLength, int decoderLength, T5DevicePlan? current) =>
        (Math.Max(rows, current?.Rows ?? 0), Math.Max(encoderLength, current?.EncoderLength ?? 0), Math.Max(decoderLength, current?.DecoderLength ?? 0));

    public bool Fits(int rows, int encoderLength, int decoderLength) => Rows >= rows && EncoderLength >= encoderLength && DecoderLength >= decoderLength;

    public DeviceArena Arena { get; }
    /// <summary>Every layer's saved tensors but its input share one set per stack: the reverse pass runs each layer's forward again first.</summary>
    public bool Recomputes { get; }
    /// <summary>The bf16 copy of a GEMM's activation operand when the weights are bf16 (else empty).</summary>
    public DeviceSpan<ushort> Bf16Operands { get; }
    public int Rows { get; }
    public int EncoderLength { get; }
    public int DecoderLength { get; }
    /// <summary>Lengths the uploaded bucket arrays were computed for (−1: none yet).</summary>
    public int EncoderBucketLength { get; set; } = -1;
    public int DecoderBucketLength { get; set; } = -1;

    /// <summary>
    /// q, k, v, the attention output before the o projection [nq, a] and logsumexp [rows, H, Tq]: in fp32 precision
    /// <see cref="Fp32"/> and <see cref="Output"/>, in bf16 <see cref="Bf16"/> and <see cref="OutputBf16"/>; the others empty.
    /// </summary>
    public readonly record struct Attention(Projections<float> Fp32, Projections<ushort> Bf16, DeviceSpan<float> Output, DeviceSpan<ushort> OutputBf16,
        DeviceSpan<float> LogSumExp);

    /// <summary>
    /// Where an attention's q, k and v are: self-attention's in one [n, 3a] tensor (<see cref="QueryKeyValue"/>: q, k, v
    /// column blocks of each row, one GEMM's output), cross-attention's q in <see cref="Query"/> [nd, a] and k, v in
    /// <see cref="KeyValue"/> [ne, 2a]; the unused ones empty. A gradient buffer laid out the same way is read through <see cref="Over"/>.
    /// </summary>
    public readonly record struct Projections<T>(bool IsSelf, DeviceSpan<T> QueryKeyValue, DeviceSpan<T> Query, DeviceSpan<T> KeyValue, int Width) where T : unmanaged
    {
        public int QueryStride => IsSelf ? 3 * Width : Width;
        public int KeyValueStride => IsSelf ? 3 * Width : 2 * Width;
        public DeviceSpan<T> Queries => IsSelf ? QueryKeyValue : Query;
        public DeviceSpan<T> Keys => IsSelf ? ColumnsFrom(QueryKeyValue, Width) : KeyValue;
        public DeviceSpan<T> Values => IsSelf ? ColumnsFrom(QueryKeyValue, 2 * Width) : ColumnsFrom(KeyValue, Width);

        /// <summary>The same layout over <paramref name="buffer"/>: self-attention's [nq, 3a], or cross-attention's dq [nq, a] followed by dk, dv [nk, 2a].</summary>
        public static Projections<T> Over(DeviceSpan<T> buffer, bool self, long queries, long keys, int width) => self
            ? new(true, buffer.Slice(0, queries * 3 * width), default, default, width)
            : new(false, default, buffer.Slice(0, queries * width), buffer.Slice(queries * width, keys * 2 * width), width);

        // A column block starting at offset (its rows keep the tensor's stride); empty when the tensor is.
        private static DeviceSpan<T> ColumnsFrom(DeviceSpan<T> tensor, int offset) => tensor.Length > offset ? tensor.Slice(offset) : default;
    }
    /// <summary>
    /// The feed-forward's saved pre-activations [n, ff]: wi's output (v1.1: wi_0's) and wi_1's (v1.1 only), in fp32
    /// precision <see cref="Hidden"/> and <see cref="Linear"/>, in bf16 <see cref="HiddenBf16"/> and <see cref="LinearBf16"/>; the others empty.
    /// </summary>
    public readonly record struct FeedForwardSaved(DeviceSpan<float> Hidden, DeviceSpan<float> Linear, DeviceSpan<ushort> HiddenBf16, DeviceSpan<ushort> LinearBf16);
    public readonly record struct EncoderLayer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, Attention SelfAttention, DeviceSpan<float> Middle,
        DeviceSpan<float> Rstd2, FeedForwardSaved FeedForward);
    public readonly record struct DecoderLayer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, Attention SelfAttention, DeviceSpan<float> Middle1,
        DeviceSpan<float> Rstd2, Attention CrossAttention, DeviceSpan<float> Middle2, DeviceSpan<float> Rstd3, FeedForwardSaved FeedForward);

    public EncoderLayer[] Encoder { get; }
    public DecoderLayer[] Decoder { get; }
    public DeviceSpan<float> EncoderFinal { get; }
    public DeviceSpan<float> EncoderFinalRstd { get; }
    /// <summary>The encoder's final-norm output [ne, d] in fp32 precision (empty in bf16: <see cref="EncoderOutputBf16"/>).</summary>
    public DeviceSpan<float> EncoderOutput { get; }
    /// <summary>The encoder's final-norm output [ne, d] in bf16 precision (else empty).</summary>
    public DeviceSpan<ushort> EncoderOutputBf16 { get; }
    public DeviceSpan<float> DecoderFinal { get; }
    public DeviceSpan<float> DecoderFinalRstd { get; }
    public DeviceSpan<float> DecoderOutput { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> GradientWide { get; }
    public DeviceSpan<float> GradientLinear { get; }
    /// <summary>[n, ff] bf16: d(wi_1's output) in bf16 precision of a gated feed-forward (else empty).</summary>
    public DeviceSpan<ushort> GradientLinearBf16 { get; }
    public DeviceSpan<float> GradientAttention { get; }
    /// <summary>d(q, k, v) in the layout of the attention's <see cref="Projections{T}"/> (also the cached decoder's scratch for cross-attention k and v).</summary>
    public DeviceSpan<float> GradientProjections { get; }
    /// <summary>[n, d] bf16: the residual gradient rounded by the norm backward that updated it (bf16 precision; else empty).</summary>
    public DeviceSpan<ushort> ResidualGradientBf16 { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    public DeviceSpan<float> DecoderOutputGradient { get; }
    public DeviceSpan<float> DecoderGradient { get; }
    public DeviceSpan<float> EncoderOutputGradient { get; }
    public DeviceSpan<float> EncoderGradient { get; }
    /// <summary>Zeros [max length, d]: the position table embedding_forward adds (T5 has none).</summary>
    public DeviceSpan<float> ZeroPositions { get; }

    public DeviceSpan<int> EncoderTokens { get; }
    public DeviceSpan<int> DecoderTokens { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public DeviceSpan<int> EncoderLengths { get; }
    public DeviceSpan<int> EncoderBuckets { get; }
    public DeviceSpan<int> DecoderBuckets { get; }

    public int[] HostEncoderTokens { get; }
    public int[] HostDecoderTokens { get; }
    public int[] HostInputLengths { get; }
    public int[] HostTargetLengths { get; }
    public int[] HostEncoderLengths { get; }
    public int[] HostEncoderBuckets { get; }
    public int[] HostDecoderBuckets { get; }

    /// <summary>The LM head: logits, loss and d(decoder output) at the targets only.</summary>
    public DeviceLanguageModelHead Head { get; }

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

    public void Dispose() => Arena.Dispose();
}
