using System.Numerics;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// What the CPU GPT-2 engine keeps besides <see cref="DecoderCpuActivations{T}"/>: per layer exactly what the
/// input-gradient-only backward needs (residual inputs, norm statistics, qkv, attention output and logsumexp, MLP
/// pre-activation), the final norm's statistics, and shared scratch.
/// </summary>
internal sealed class Gpt2CpuActivations<T> : DecoderCpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public Gpt2CpuActivations(Gpt2Config config, int rows, int sequence, bool savesLayers) : base(rows, sequence, config.Embedding, config.VocabSize, savesLayers)
    {
        int n = rows * sequence, c = config.Embedding;
        // Each block's input is its own (the previous block writes it); the rest may be one set every block reuses.
        Layers = [.. PerLayer(config.Layers, () => new LayerSaved(
                Input: [], Mean1: new T[n], Rstd1: new T[n], Qkv: new T[n * 3 * c], Attention: new T[n * c],
                LogSumExp: new T[n * config.Heads], Middle: new T[n * c], Mean2: new T[n], Rstd2: new T[n], Hidden: new T[n * config.Inner]))
            .Select(saved => saved with { Input = new T[n * c] })];
        FinalMean = new T[n];
        FinalRstd = new T[n];
        Norm = new T[n * c];
        Projection = new T[n * c];
        Wide = new T[n * config.Inner];
        GradientQkv = ForGradient(n * 3 * c);
        GradientWide = ForGradient(n * config.Inner);
    }

    public readonly record struct LayerSaved(T[] Input, T[] Mean1, T[] Rstd1, T[] Qkv, T[] Attention, T[] LogSumExp,
        T[] Middle, T[] Mean2, T[] Rstd2, T[] Hidden);

    public LayerSaved[] Layers { get; }
    public override T[] BlockInput(int layer) => layer < Layers.Length ? Layers[layer].Input : Final;
    /// <summary>ln_f's statistics.</summary>
    public T[] FinalMean { get; }
    public T[] FinalRstd { get; }

    public T[] Norm { get; }
    public T[] Projection { get; }
    public T[] Wide { get; }
    public T[] GradientQkv { get; }
    public T[] GradientWide { get; }
}
