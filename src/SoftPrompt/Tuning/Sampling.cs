using System.Numerics.Tensors;

namespace SoftPrompt.Tuning;

/// <summary>
/// Sampling instead of greedy decoding: logits divided by <see cref="Temperature"/>, kept to the <see cref="TopK"/> most
/// likely tokens (0: all) and then to the smallest set whose probability reaches <see cref="TopP"/> (1: all), one draw per
/// new token. Row i of a generation draws from its own generator seeded by (<see cref="Seed"/>, i), so a row's answer
/// does not depend on the batch size or on the other rows.
/// </summary>
public sealed record Sampling(float Temperature = 1f, int TopK = 0, float TopP = 1f, int Seed = 0)
{
    public void Validate()
    {
        if (!(Temperature > 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"`Sampling.Temperature` must be a positive number, got {Temperature}.");
        if (TopK < 0) throw new ArgumentException($"`Sampling.TopK` must be 0 (all tokens) or positive, got {TopK}.");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"`Sampling.TopP` must be in (0, 1], got {TopP}.");
    }

    /// <summary>The row number of a generation's first row: a rank decoding a share of the rows draws each row from its generator in the whole list.</summary>
    internal int FirstRow { get; init; }

    /// <summary>Row <paramref name="row"/>'s generator: SplitMix64 of (seed, row), so neighbouring rows and seeds do not correlate.</summary>
    internal Random RowRandom(int row)
    {
        ulong z = ((ulong)(uint)Seed << 32 | (uint)(FirstRow + row)) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return new Random((int)(z ^ (z >> 31)));
    }
}

/// <summary>Draws tokens as <see cref="Sampling"/> says; its buffers are sized for one vocabulary and reused.</summary>
internal sealed class TokenSampler(Sampling sampling, int vocabSize)
{
    private readonly float[] probabilities = new float[vocabSize];
    private readonly int[] order = new int[vocabSize];

    public int Sample(ReadOnlySpan<float> logits, Random random)
    {
        int v = probabilities.Length;
        TensorPrimitives.Divide(logits[..v], sampling.Temperature, probabilities);
        TensorPrimitives.SoftMax(probabilities, probabilities);
        for (int i = 0; i < v; i++) order[i] = i;
        // Most likely first; equal probabilities keep the lower id first, so the kept set is well defined.
        Array.Sort(order, (a, b) => probabilities[a] != probabilities[b] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        int kept = sampling.TopK > 0 ? Math.Min(sampling.TopK, v) : v;
        double mass = 0;
        for (int i = 0; i < kept; i++)
        {
            mass += probabilities[order[i]];
            if (mass >= sampling.TopP) { kept = i + 1; break; }
        }
        double total = 0;
        for (int i = 0; i < kept; i++) total += probabilities[order[i]];
        double draw = random.NextDouble() * total;
        for (int i = 0; i < kept - 1; i++)
        {
            draw -= probabilities[order[i]];
            if (draw < 0) return order[i];
        }
        return order[kept - 1];
    }
}
