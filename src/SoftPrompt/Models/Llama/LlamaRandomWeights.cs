using System.Numerics;

namespace SoftPrompt.Models.Llama;

/// <summary>Random Llama-style weights for tests and shape benchmarks: <c>LlamaWeights&lt;float&gt;.CreateRandom(config, seed)</c>.</summary>
public static class LlamaRandomWeights
{
    extension<T>(LlamaWeights<T>) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        /// <summary>
        /// Hugging Face's init (initializer_range 0.02) for every matrix; norm weights ~ 1 + N(0, 0.1²) rather than exactly
        /// 1, so a dropped or swapped norm shows. Each tensor draws from its own stream: same seed, same model.
        /// </summary>
        public static LlamaWeights<T> CreateRandom(LlamaConfig config, int seed)
        {
            config.Validate("CreateRandom");
            int stream = 0;
            long d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, vocab = config.VocabSize;
            T[] Normal(long count, double std, double mean = 0) => RandomNormal.Create<T>(checked((int)count), mean, std, seed, stream++);
            const double std = 0.02;
            var layers = new LlamaLayerWeights<T>[config.Layers];
            for (int i = 0; i < layers.Length; i++)
                layers[i] = new LlamaLayerWeights<T>
                {
                    AttentionNormWeight = Normal(d, 0.1, 1),
                    Query = Normal(a * d, std),
                    Key = Normal(kv * d, std),
                    Value = Normal(kv * d, std),
                    Output = Normal(d * a, std),
                    QueryBias = config.QueryKeyValueBiases ? Normal(a, std) : [],
                    KeyBias = config.QueryKeyValueBiases ? Normal(kv, std) : [],
                    ValueBias = config.QueryKeyValueBiases ? Normal(kv, std) : [],
                    OutputBias = config.OutputBias ? Normal(d, std) : [],
                    MlpNormWeight = Normal(d, 0.1, 1),
                    Gate = Normal(ff * d, std),
                    Up = Normal(ff * d, std),
                    Down = Normal(d * ff, std),
                };
            return new LlamaWeights<T>
            {
                Config = config,
                TokenEmbedding = Normal(vocab * d, std),
                LanguageModelHead = config.TiedEmbeddings ? null : Normal(vocab * d, std),
                Layers = layers,
                FinalNormWeight = Normal(d, 0.1, 1),
            };
        }
    }
}
