using System.Numerics;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Tests;

/// <summary>Small random GPT-2 models and batches for gradient checks.</summary>
internal static class TestModels
{
    public static Gpt2Config TinyConfig(int vocab = 23, int positions = 24, int embedding = 12, int layers = 2, int heads = 3, int inner = 20)
        => new(vocab, positions, embedding, layers, heads, inner, 1e-5, "gelu_new");

    public static Gpt2Weights<T> Random<T>(Gpt2Config config, int seed) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        T[] Normal(int count, double std, double mean = 0)
        {
            var values = new T[count];
            for (int i = 0; i < count; i++)
            {
                double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                values[i] = T.CreateChecked(mean + std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }
            return values;
        }
        int d = config.Embedding, inner = config.Inner;
        return new Gpt2Weights<T>
        {
            Config = config,
            TokenEmbedding = Normal(config.VocabSize * d, 0.3),
            PositionEmbedding = Normal(config.MaxPositions * d, 0.1),
            FinalNormWeight = Normal(d, 0.1, 1),
            FinalNormBias = Normal(d, 0.1),
            Layers = Enumerable.Range(0, config.Layers).Select(_ => new Gpt2LayerWeights<T>
            {
                Norm1Weight = Normal(d, 0.1, 1), Norm1Bias = Normal(d, 0.1),
                QkvWeight = Normal(d * 3 * d, 0.3), QkvBias = Normal(3 * d, 0.1),
                AttentionProjectionWeight = Normal(d * d, 0.3), AttentionProjectionBias = Normal(d, 0.1),
                Norm2Weight = Normal(d, 0.1, 1), Norm2Bias = Normal(d, 0.1),
                FcWeight = Normal(d * inner, 0.3), FcBias = Normal(inner, 0.1),
                FcProjectionWeight = Normal(inner * d, 0.3), FcProjectionBias = Normal(d, 0.1),
            }).ToArray(),
        };
    }

    public static T[] RandomPrompts<T>(int count, int seed) where T : IBinaryFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => T.CreateChecked(random.NextDouble() - 0.5)).ToArray();
    }

    /// <summary>Rows of unequal length, one with an empty input, spread over <paramref name="prompts"/> prompts.</summary>
    public static TokenBatch MixedBatch(int promptLength, int prompts, int vocab)
    {
        var batch = new TokenBatch(4, 8, promptLength);
        batch.Reset(7);
        batch.AddRow([1, 5, 7], [2, 9], 0);
        batch.AddRow([], [4, 4, vocab - 1], Math.Min(1, prompts - 1));
        batch.AddRow([3, 3, 8, 11, 0], [6, 2], 0);
        batch.AddRow([10], [1], prompts - 1);
        return batch;
    }
}
