using System.Numerics;

namespace SoftPrompt.Models.T5;

/// <summary>Random T5 weights for tests and shape benchmarks: <c>T5Weights&lt;float&gt;.CreateRandom(config, seed)</c>.</summary>
public static class T5RandomWeights
{
    extension<T>(T5Weights<T>) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        /// <summary>
        /// Hugging Face's T5 init (initializer_factor 1): shared and lm_head ~ N(0, 1), q ~ N(0, 1/(d·d_kv)) (the
        /// attention scale T5 folds into q), k, v, wi ~ N(0, 1/d), o ~ N(0, 1/(H·d_kv)), wo ~ N(0, 1/d_ff), bias tables
        /// ~ N(0, 1/d). Norm weights ~ 1 + N(0, 0.1²) rather than exactly 1, so tests notice one that is dropped or
        /// swapped. Each tensor draws from its own stream: same seed, same model, whatever the thread count.
        /// </summary>
        public static T5Weights<T> CreateRandom(T5Config config, int seed)
        {
            config.Validate("CreateRandom");
            int stream = 0;
            long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, vocab = config.VocabSize;
            T[] Normal(long count, double std, double mean = 0) => RandomNormal.Create<T>(checked((int)count), mean, std, seed, stream++);
            T[] NormWeight() => Normal(d, 0.1, mean: 1);
            T5AttentionWeights<T> Attention() => new()
            {
                Query = Normal(a * d, 1 / Math.Sqrt(d * config.HeadSize)),
                Key = Normal(a * d, 1 / Math.Sqrt(d)),
                Value = Normal(a * d, 1 / Math.Sqrt(d)),
                Output = Normal(d * a, 1 / Math.Sqrt(a)),
            };
            T5FeedForwardWeights<T> FeedForward() => new()
            {
                Input = Normal(ff * d, 1 / Math.Sqrt(d)),
                Linear = config.IsGated ? Normal(ff * d, 1 / Math.Sqrt(d)) : null,
                Output = Normal(d * ff, 1 / Math.Sqrt(ff)),
            };
            var encoder = new T5EncoderLayerWeights<T>[config.Layers];
            for (int i = 0; i < encoder.Length; i++)
                encoder[i] = new T5EncoderLayerWeights<T>
                {
                    SelfAttentionNormWeight = NormWeight(), SelfAttention = Attention(),
                    FeedForwardNormWeight = NormWeight(), FeedForward = FeedForward(),
                };
            var decoder = new T5DecoderLayerWeights<T>[config.DecoderLayers];
            for (int i = 0; i < decoder.Length; i++)
                decoder[i] = new T5DecoderLayerWeights<T>
                {
                    SelfAttentionNormWeight = NormWeight(), SelfAttention = Attention(),
                    CrossAttentionNormWeight = NormWeight(), CrossAttention = Attention(),
                    FeedForwardNormWeight = NormWeight(), FeedForward = FeedForward(),
                };
            return new T5Weights<T>
            {
                Config = config,
                TokenEmbedding = Normal(vocab * d, 1),
                LanguageModelHead = config.TiedEmbeddings ? null : Normal(vocab * d, 1),
                EncoderRelativeBias = Normal((long)config.RelativeBuckets * config.Heads, 1 / Math.Sqrt(d)),
                DecoderRelativeBias = Normal((long)config.RelativeBuckets * config.Heads, 1 / Math.Sqrt(d)),
                EncoderLayers = encoder,
                DecoderLayers = decoder,
                EncoderFinalNormWeight = NormWeight(),
                DecoderFinalNormWeight = NormWeight(),
            };
        }
    }
}
