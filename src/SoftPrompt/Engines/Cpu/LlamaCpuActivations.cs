using System.Numerics;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// What the CPU Llama engine keeps besides <see cref="DecoderCpuActivations{T}"/>: per layer exactly what the
/// input-gradient-only backward needs (residual inputs, RMS statistics, rotated q and the k/v widened to every query
/// head, attention output and logsumexp, the SwiGLU branches), the final norm's statistics, and shared scratch.
/// </summary>
internal sealed class LlamaCpuActivations<T> : DecoderCpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public LlamaCpuActivations(LlamaConfig config, int rows, int sequence, bool savesLayers) : base(rows, sequence, config.Embedding, config.VocabSize, savesLayers)
    {
        int n = rows * sequence, d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        // Each block's input is its own (the previous block writes it); the rest may be one set every block reuses.
        Layers = [.. PerLayer(config.Layers, () => new LayerSaved(Input: [], Rstd1: new T[n], Query: new T[n * a], Key: new T[n * a], Value: new T[n * a],
                Attention: new T[n * a], LogSumExp: new T[n * config.Heads], Middle: new T[n * d], Rstd2: new T[n], Gate: new T[n * ff], Up: new T[n * ff]))
            .Select(saved => saved with { Input = new T[n * d] })];
        FinalRstd = new T[n];
        Norm = new T[n * d];
        KeyNarrow = new T[n * kv];
        ValueNarrow = new T[n * kv];
        Projection = new T[n * d];
        Wide = new T[n * ff];
        GradientQuery = ForGradient(n * a);
        GradientKey = ForGradient(n * a);
        GradientValue = ForGradient(n * a);
        GradientAttention = ForGradient(n * a);
        GradientGate = ForGradient(n * ff);
        GradientUp = ForGradient(n * ff);
    }

    /// <summary>Query is rotated and scaled by 1/√hd; Key and Value are rotated (k) and repeated to [n, Heads·hd].</summary>
    public readonly record struct LayerSaved(T[] Input, T[] Rstd1, T[] Query, T[] Key, T[] Value, T[] Attention, T[] LogSumExp,
        T[] Middle, T[] Rstd2, T[] Gate, T[] Up);

    public LayerSaved[] Layers { get; }
    public override T[] BlockInput(int layer) => layer < Layers.Length ? Layers[layer].Input : Final;
    public T[] FinalRstd { get; }

    public T[] Norm { get; }
    public T[] KeyNarrow { get; }
    public T[] ValueNarrow { get; }
    public T[] Projection { get; }
    public T[] Wide { get; }
    public T[] GradientQuery { get; }
    public T[] GradientKey { get; }
    public T[] GradientValue { get; }
    public T[] GradientAttention { get; }
    public T[] GradientGate { get; }
    public T[] GradientUp { get; }
}
