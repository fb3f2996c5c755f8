using System.Numerics.Tensors;
using SoftPrompt.Cpu;

namespace SoftPrompt.Tuning;

/// <summary>One vocabulary token near a prompt vector.</summary>
public readonly record struct Neighbor(int TokenId, float Cosine);

/// <summary>The k nearest vocabulary tokens of one prompt position, and how tightly they cluster.</summary>
public sealed record PositionNeighbors(int Position, Neighbor[] Nearest, float Cohesion);

/// <summary>
/// The paper's interpretability analysis: for each prompt vector, its nearest neighbours in the frozen token
/// embedding table by cosine similarity, and the cohesion of each neighbour set (mean pairwise cosine between the
/// neighbours' own embeddings: tight semantic clusters score high).
/// </summary>
public static class PromptNeighbors
{
    /// <param name="prompt">[P, d] prompt vectors.</param>
    /// <param name="embeddings">[V, d] token embedding table.</param>
    public static PositionNeighbors[] Find(ReadOnlySpan<float> prompt, ReadOnlySpan<float> embeddings, int width, int k)
    {
        if (width <= 0 || prompt.Length % width != 0 || embeddings.Length % width != 0)
            throw new ArgumentException($"Prompt ({prompt.Length}) and embeddings ({embeddings.Length}) must be whole rows of width {width}.");
        int positions = prompt.Length / width, vocab = embeddings.Length / width;
        k = Math.Clamp(k, 1, vocab);
        var unitTable = Normalized(embeddings, width);
        var unitPrompt = Normalized(prompt, width);
        var cosines = new float[positions * vocab];
        CpuGemm.Gemm<float>(false, true, positions, vocab, width, 1f, unitPrompt, width, unitTable, width, 0f, cosines, vocab);
        var result = new PositionNeighbors[positions];
        for (int p = 0; p < positions; p++)
        {
            var row = cosines.AsSpan(p * vocab, vocab);
            var nearest = TopK(row, k);
            result[p] = new PositionNeighbors(p, nearest, Cohesion(nearest, unitTable, width));
        }
        return result;
    }

    private static float[] Normalized(ReadOnlySpan<float> rows, int width)
    {
        var unit = rows.ToArray();
        for (int start = 0; start < unit.Length; start += width)
        {
            var row = unit.AsSpan(start, width);
            float norm = TensorPrimitives.Norm(row);
            if (norm > 0) TensorPrimitives.Divide(row, norm, row);
        }
        return unit;
    }

    private static Neighbor[] TopK(ReadOnlySpan<float> row, int k)
    {
        var best = new List<Neighbor>(k + 1);
        for (int id = 0; id < row.Length; id++)
        {
            float value = row[id];
            if (best.Count == k && value <= best[^1].Cosine) continue;
            int at = best.Count;
            while (at > 0 && best[at - 1].Cosine < value) at--;
            best.Insert(at, new Neighbor(id, value));
            if (best.Count > k) best.RemoveAt(k);
        }
        return [.. best];
    }

    private static float Cohesion(Neighbor[] nearest, float[] unitTable, int width)
    {
        if (nearest.Length < 2) return 1f;
        double sum = 0;
        int pairs = 0;
        for (int i = 0; i < nearest.Length; i++)
            for (int j = i + 1; j < nearest.Length; j++, pairs++)
                sum += TensorPrimitives.Dot(unitTable.AsSpan(nearest[i].TokenId * width, width), unitTable.AsSpan(nearest[j].TokenId * width, width));
        return (float)(sum / pairs);
    }
}
