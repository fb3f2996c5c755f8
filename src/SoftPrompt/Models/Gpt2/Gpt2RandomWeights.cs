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
            T[] Normal(long count, double mean = 0) => Gaussian<T>(checked((int)count), mean, seed, stream++);
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
            };
        }
    }

    /// <summary>
    /// Box–Muller over a counter-based generator: element pair j of a tensor depends only on (seed, stream, j),
    /// so chunks fill in parallel and the result does not depend on scheduling.
    /// </summary>
    private static T[] Gaussian<T>(int count, double mean, int seed, int stream) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        const int PairsPerChunk = 1 << 15;
        ulong key = SplitMix(((ulong)(uint)seed << 32) | (uint)stream);
        var values = GC.AllocateUninitializedArray<T>(count);
        int pairs = (count + 1) / 2;
        Parallel.For(0, (pairs + PairsPerChunk - 1) / PairsPerChunk, chunk =>
        {
            int end = Math.Min(pairs, (chunk + 1) * PairsPerChunk);
            for (int j = chunk * PairsPerChunk; j < end; j++)
            {
                double u1 = Uniform(key, 2 * (ulong)j), u2 = Uniform(key, 2 * (ulong)j + 1);
                double radius = Std * Math.Sqrt(-2 * Math.Log(1 - u1)); // 1 - u1 ∈ (0, 1]: no log(0)
                double angle = 2 * Math.PI * u2;
                values[2 * j] = T.CreateTruncating(mean + radius * Math.Cos(angle));
                if (2 * j + 1 < count) values[2 * j + 1] = T.CreateTruncating(mean + radius * Math.Sin(angle));
            }
        });
        return values;
    }

    /// <summary>53 random bits as a double in [0, 1).</summary>
    private static double Uniform(ulong key, ulong counter) => (SplitMix(key + counter) >> 11) * (1.0 / (1UL << 53));

    /// <summary>SplitMix64's step and finaliser: a cheap bijective 64-bit mix, ample for test weights.</summary>
    private static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
