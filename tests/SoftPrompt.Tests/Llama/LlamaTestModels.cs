using System.Numerics;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Tests.Llama;

/// <summary>Small random Llama-style models for gradient checks (weights larger than HF's init, so bugs show).</summary>
internal static class LlamaTestModels
{
    /// <summary>Grouped-query (6 query heads over 2 kv heads), head_dim 6 ≠ d/heads, Llama-3 RoPE scaling.</summary>
    public static LlamaConfig TinyConfig(bool tied = false, int keyValueHeads = 2) =>
        new(VocabSize: 29, Embedding: 16, Layers: 2, Heads: 6, KeyValueHeads: keyValueHeads, HeadSize: 6, Intermediate: 24, MaxPositions: 32,
            RmsNormEpsilon: 1e-5, RopeTheta: 500, RopeScaling: new LlamaRopeScaling(LlamaRopeScaling.Llama3, 4, 1, 4, 8), TiedEmbeddings: tied);

    public static LlamaWeights<T> Random<T>(LlamaConfig config, int seed) where T : unmanaged, IBinaryFloatingPointIeee754<T>
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
        int d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        double std(int fanIn) => 1.0 / Math.Sqrt(fanIn);
        return new LlamaWeights<T>
        {
            Config = config,
            TokenEmbedding = Normal(config.VocabSize * d, 0.5),
            LanguageModelHead = config.TiedEmbeddings ? null : Normal(config.VocabSize * d, 0.5),
            FinalNormWeight = Normal(d, 0.1, 1),
            Layers = [.. Enumerable.Range(0, config.Layers).Select(_ => new LlamaLayerWeights<T>
            {
                AttentionNormWeight = Normal(d, 0.1, 1),
                Query = Normal(a * d, 2 * std(d)),
                Key = Normal(kv * d, 2 * std(d)),
                Value = Normal(kv * d, std(d)),
                Output = Normal(d * a, std(a)),
                QueryBias = config.QueryKeyValueBiases ? Normal(a, 0.5) : [],
                KeyBias = config.QueryKeyValueBiases ? Normal(kv, 0.5) : [],
                ValueBias = config.QueryKeyValueBiases ? Normal(kv, 0.5) : [],
                OutputBias = config.OutputBias ? Normal(d, 0.5) : [],
                MlpNormWeight = Normal(d, 0.1, 1),
                Gate = Normal(ff * d, std(d)),
                Up = Normal(ff * d, std(d)),
                Down = Normal(d * ff, std(ff)),
            })],
        };
    }
}
