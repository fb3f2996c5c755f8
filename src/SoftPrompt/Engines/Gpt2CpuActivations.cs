using System.Numerics;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// Everything the CPU engine keeps for one (rows, sequence) capacity: per layer exactly what the
/// input-gradient-only backward needs (residual inputs, norm statistics, qkv, attention output and
/// logsumexp, MLP pre-activation) plus shared scratch. Allocated once, reused every step.
/// </summary>
internal sealed class Gpt2CpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public Gpt2CpuActivations(Gpt2Config config, int rows, int sequence)
    {
        Rows = rows;
        Sequence = sequence;
        int n = rows * sequence, c = config.Embedding;
        Layers = new LayerSaved[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
        {
            Layers[l] = new LayerSaved(
                Input: new T[n * c], Mean1: new T[n], Rstd1: new T[n], Qkv: new T[n * 3 * c], Attention: new T[n * c],
                LogSumExp: new T[n * config.Heads], Middle: new T[n * c], Mean2: new T[n], Rstd2: new T[n], Hidden: new T[n * config.Inner]);
        }
        Final = new T[n * c];
        FinalMean = new T[n];
        FinalRstd = new T[n];
        FinalNorm = new T[n * c];
        Norm = new T[n * c];
        Projection = new T[n * c];
        Wide = new T[n * config.Inner];
        Gradient = new T[n * c];
        GradientNext = new T[n * c];
        GradientQkv = new T[n * 3 * c];
        GradientWide = new T[n * config.Inner];
        Head = new CpuLanguageModelHead<T>(n, c, config.VocabSize);
    }

    public int Rows { get; }
    public int Sequence { get; }

    public readonly record struct LayerSaved(T[] Input, T[] Mean1, T[] Rstd1, T[] Qkv, T[] Attention, T[] LogSumExp,
        T[] Middle, T[] Mean2, T[] Rstd2, T[] Hidden);

    public LayerSaved[] Layers { get; }
    /// <summary>Residual stream after the last block, ln_f statistics and output.</summary>
    public T[] Final { get; }
    public T[] FinalMean { get; }
    public T[] FinalRstd { get; }
    public T[] FinalNorm { get; }

    public T[] Norm { get; }
    public T[] Projection { get; }
    public T[] Wide { get; }
    public T[] Gradient { get; }
    public T[] GradientNext { get; }
    public T[] GradientQkv { get; }
    public T[] GradientWide { get; }

    /// <summary>The LM head's target list and chunk buffers (targets by flattened row·T + t position).</summary>
    public CpuLanguageModelHead<T> Head { get; }
}
