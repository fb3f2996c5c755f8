using System.Numerics;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// Everything the CPU T5 engine keeps for one (rows, encoder length, decoder length) capacity: per layer exactly
/// what the input-gradient-only backward needs (residual inputs, RMS-norm rstd, q/k/v, attention output and
/// logsumexp, feed-forward pre-activations), the position-bias planes, and shared scratch. Allocated once, reused.
/// ne = rows·encoder length, nd = rows·decoder length, a = H·d_kv, ff = d_ff.
/// </summary>
internal sealed class T5CpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public T5CpuActivations(T5Config config, int rows, int encoderLength, int decoderLength)
    {
        Rows = rows;
        EncoderLength = encoderLength;
        DecoderLength = decoderLength;
        int ne = rows * encoderLength, nd = rows * decoderLength, n = Math.Max(ne, nd);
        int d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, heads = config.Heads;
        T[] Linear(int count) => config.IsGated ? new T[count] : [];
        Encoder = new EncoderLayerSaved[config.Layers];
        for (int l = 0; l < Encoder.Length; l++)
        {
            Encoder[l] = new EncoderLayerSaved(
                Input: new T[ne * d], Rstd1: new T[ne], SelfAttention: new AttentionSaved(ne, ne, a, rows * heads * encoderLength),
                Middle: new T[ne * d], Rstd2: new T[ne], Hidden: new T[ne * ff], Linear: Linear(ne * ff));
        }
        Decoder = new DecoderLayerSaved[config.DecoderLayers];
        for (int l = 0; l < Decoder.Length; l++)
        {
            Decoder[l] = new DecoderLayerSaved(
                Input: new T[nd * d], Rstd1: new T[nd], SelfAttention: new AttentionSaved(nd, nd, a, rows * heads * decoderLength),
                Middle1: new T[nd * d], Rstd2: new T[nd], CrossAttention: new AttentionSaved(nd, ne, a, rows * heads * decoderLength),
                Middle2: new T[nd * d], Rstd3: new T[nd], Hidden: new T[nd * ff], Linear: Linear(nd * ff));
        }
        EncoderFinal = new T[ne * d];
        EncoderFinalRstd = new T[ne];
        EncoderOutput = new T[ne * d];
        DecoderFinal = new T[nd * d];
        DecoderFinalRstd = new T[nd];
        DecoderOutput = new T[nd * d];
        EncoderBias = new T[heads * encoderLength * encoderLength];
        DecoderBias = new T[heads * decoderLength * decoderLength];

        Norm = new T[n * d];
        Projection = new T[n * d];
        Wide = new T[n * ff];
        GradientWide = new T[n * ff];
        GradientLinear = Linear(n * ff);
        GradientAttention = new T[n * a];
        GradientQuery = new T[n * a];
        GradientKey = new T[n * a];
        GradientValue = new T[n * a];
        DecoderOutputGradient = new T[nd * d];
        DecoderGradient = new T[nd * d];
        EncoderOutputGradient = new T[ne * d];
        EncoderGradient = new T[ne * d];

        InputLengths = new int[rows];
        TargetLengths = new int[rows];
        EncoderLengths = new int[rows];
        Head = new CpuLanguageModelHead<T>(nd, d, config.VocabSize);
    }

    public int Rows { get; }
    public int EncoderLength { get; }
    public int DecoderLength { get; }

    /// <summary>q [nq, a], k and v [nk, a], attention output before the o projection [nq, a], logsumexp [rows, H, Tq].</summary>
    public sealed class AttentionSaved(int queries, int keys, int width, int lseCount)
    {
        public T[] Query { get; } = new T[queries * width];
        public T[] Key { get; } = new T[keys * width];
        public T[] Value { get; } = new T[keys * width];
        public T[] Output { get; } = new T[queries * width];
        public T[] LogSumExp { get; } = new T[lseCount];
    }

    /// <summary>Hidden: the activated branch's input (wi·x or wi_0·x); Linear: wi_1·x (gated only, else empty).</summary>
    public readonly record struct EncoderLayerSaved(T[] Input, T[] Rstd1, AttentionSaved SelfAttention, T[] Middle, T[] Rstd2, T[] Hidden, T[] Linear);

    public readonly record struct DecoderLayerSaved(T[] Input, T[] Rstd1, AttentionSaved SelfAttention, T[] Middle1, T[] Rstd2,
        AttentionSaved CrossAttention, T[] Middle2, T[] Rstd3, T[] Hidden, T[] Linear);

    public EncoderLayerSaved[] Encoder { get; }
    public DecoderLayerSaved[] Decoder { get; }
    /// <summary>Residual streams after the last block, their final-norm rstd and the normalised outputs [n, d].</summary>
    public T[] EncoderFinal { get; }
    public T[] EncoderFinalRstd { get; }
    public T[] EncoderOutput { get; }
    public T[] DecoderFinal { get; }
    public T[] DecoderFinalRstd { get; }
    public T[] DecoderOutput { get; }

    /// <summary>Position-bias planes [H, T, T] for the lengths recorded beside them (−1: not built yet).</summary>
    public T[] EncoderBias { get; }
    public T[] DecoderBias { get; }
    public int EncoderBiasLength = -1;
    public int DecoderBiasLength = -1;

    public T[] Norm { get; }
    public T[] Projection { get; }
    public T[] Wide { get; }
    public T[] GradientWide { get; }
    public T[] GradientLinear { get; }
    public T[] GradientAttention { get; }
    public T[] GradientQuery { get; }
    public T[] GradientKey { get; }
    public T[] GradientValue { get; }
    /// <summary>d(decoder output) at target positions, zero elsewhere [nd, d].</summary>
    public T[] DecoderOutputGradient { get; }
    /// <summary>The decoder's residual-stream gradient [nd, d].</summary>
    public T[] DecoderGradient { get; }
    /// <summary>d(encoder output), summed over every decoder layer's cross-attention k and v [ne, d].</summary>
    public T[] EncoderOutputGradient { get; }
    /// <summary>The encoder's residual-stream gradient [ne, d]; at the end, d(encoder input) whose prompt rows are dLoss/dPrompt.</summary>
    public T[] EncoderGradient { get; }

    /// <summary>Per row: input tokens, target tokens, and encoder positions that are keys (P + input tokens).</summary>
    public int[] InputLengths { get; }
    public int[] TargetLengths { get; }
    public int[] EncoderLengths { get; }

    /// <summary>The LM head's target list and chunk buffers (targets by flattened decoder position row·Tdec + j).</summary>
    public CpuLanguageModelHead<T> Head { get; }
}
