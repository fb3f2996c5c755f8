using System.Numerics;

namespace SoftPrompt.Models.Gpt2;

/// <summary>Random GPT-2 weights for tests and shape benchmarks: <c>Gpt2Weights&lt;float&gt;.CreateRandom(config, seed)</c>.</summary>
public static class Gpt2RandomWeights
{
    private const double Std = 0.02;

    extension<T>(Gpt2Weights<T>) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        /// <summary>
        /// Matrices and embeddings ~ N(0, 0.02²) as in GPT-2's init. Biases ~ N(0, 0.02²) and LayerNorm
        /// weights ~ 1 + N(0, 0.02²) rather than exactly 0 and 1, so tests notice a parameter that is
        /// dropped or swapped. Each tensor draws from its own stream: same seed, same model, whatever the thread count.
        /// </summary>
        public static Gpt2Weights<T> CreateRandom(Gpt2Config config, int seed)
        {
            config.Validate("CreateRandom");
            int d = config.Embedding, inner = config.Inner, stream = 0;
            T[] Normal(long count, double mean = 0) => RandomNormal.Create<T>(checked((int)count), mean, Std, seed, stream++);
            var layers = new Gpt2LayerWeights<T>[config.Layers];
            for (int i = 0; i < layers.Length; i++)
            {
                layers[i] = new Gpt2LayerWeights<T>
                {
                    Norm1Weight = Normal(d, mean: 1),
                    Norm1Bias = Normal(d),
                    QkvWeight = Normal((long)d * 3 * d),
                    QkvBias = Normal(3 * d),
                    AttentionProjectionWeight = Normal((long)d * d),
                    AttentionProjectionBias = Normal(d),
                    Norm2Weight = Normal(d, mean: 1),
                    Norm2Bias = Normal(d),
                    FcWeight = Normal((long)d * inner),
                    FcBias = Normal(inner),
                    FcProjectionWeight = Normal((long)inner * d),
                    FcProjectionBias = Normal(d),
                };
            }
            return new Gpt2Weights<T>
            {
                Config = config,
                TokenEmbedding = Normal((long)config.VocabSize * d),
                PositionEmbedding = Normal((long)config.MaxPositions * d),
                Layers = layers,
                FinalNormWeight = Normal(d, mean: 1),
                FinalNormBias = Normal(d),
                LanguageModelHead = config.TiedEmbeddings ? null : Normal((long)config.VocabSize * d),
            };
        }
    }
}
