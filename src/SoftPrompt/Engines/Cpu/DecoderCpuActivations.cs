using System.Numerics;

namespace SoftPrompt.Engines;

/// <summary>
/// What every decoder-only CPU engine keeps for one (rows, sequence) capacity besides its blocks' own saved tensors: the
/// residual stream after the last block, the final norm's output, the gradient at it and the running residual gradient,
/// and the LM head's buffers. Allocated once, reused every step.
/// </summary>
internal abstract class DecoderCpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private protected DecoderCpuActivations(int rows, int sequence, int width, int vocab)
    {
        Rows = rows;
        Sequence = sequence;
        int n = rows * sequence;
        Final = new T[n * width];
        FinalNorm = new T[n * width];
        Gradient = new T[n * width];
        GradientNext = new T[n * width];
        Head = new CpuLanguageModelHead<T>(n, width, vocab);
    }

    public int Rows { get; }
    public int Sequence { get; }
    /// <summary>Residual stream after the last block, and the final norm's output.</summary>
    public T[] Final { get; }
    public T[] FinalNorm { get; }
    /// <summary>d(loss)/d(FinalNorm), written by the LM head at target positions.</summary>
    public T[] Gradient { get; }
    /// <summary>d(loss)/d(residual stream), carried down through the blocks.</summary>
    public T[] GradientNext { get; }
    public CpuLanguageModelHead<T> Head { get; }

    /// <summary>The input of block <paramref name="layer"/>; past the last block, <see cref="Final"/>.</summary>
    public abstract T[] BlockInput(int layer);
}
