using System.Numerics;

namespace SoftPrompt.Engines;

/// <summary>
/// What every decoder-only CPU engine keeps for one (rows, sequence) capacity besides its blocks' own saved tensors: the
/// residual stream after the last block, the final norm's output, the gradient at it and the running residual gradient,
/// and the LM head's buffers. Allocated once, reused every step. Without <see cref="SavesLayers"/> (activations for
/// forward passes only: scoring, logits, uncached decoding) a family keeps one set of per-layer tensors that every block
/// reuses, besides each block's input, and no gradient buffers.
/// </summary>
internal abstract class DecoderCpuActivations<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private protected DecoderCpuActivations(int rows, int sequence, int width, int vocab, bool savesLayers)
    {
        Rows = rows;
        Sequence = sequence;
        SavesLayers = savesLayers;
        int n = rows * sequence;
        Final = new T[n * width];
        FinalNorm = new T[n * width];
        Gradient = ForGradient(n * width);
        GradientNext = ForGradient(n * width);
        Head = new CpuLanguageModelHead<T>(n, width, vocab);
    }

    public int Rows { get; }
    public int Sequence { get; }
    /// <summary>Whether every block's saved tensors are its own, as the reverse pass needs.</summary>
    public bool SavesLayers { get; }

    /// <summary>A buffer only the reverse pass uses: empty without <see cref="SavesLayers"/>.</summary>
    private protected T[] ForGradient(long count) => SavesLayers ? new T[count] : [];

    /// <summary>Every layer's saved tensors from <paramref name="saved"/>: its own set each, or (without <see cref="SavesLayers"/>) one shared set.</summary>
    private protected TSaved[] PerLayer<TSaved>(int layers, Func<TSaved> saved)
    {
        var result = new TSaved[layers];
        for (int l = 0; l < layers; l++) result[l] = SavesLayers || l == 0 ? saved() : result[0];
        return result;
    }
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
