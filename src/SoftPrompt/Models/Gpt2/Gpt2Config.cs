using System.Numerics;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.Gpt2;

/// <summary>GPT-2 hyper-parameters as Hugging Face's config.json names them.</summary>
public sealed record Gpt2Config(
    int VocabSize,
    int MaxPositions,
    int Embedding,
    int Layers,
    int Heads,
    int Inner,
    double LayerNormEpsilon,
    string Activation,
    bool ScaleAttentionWeights = true,
    bool ScaleAttentionByInverseLayerIndex = false,
    bool TiedEmbeddings = true) : IModelConfig
{
    public ModelFamily Family => Gpt2Family.Instance;

    public int HeadSize => Embedding / Heads;

    /// <summary>
    /// What block <paramref name="layer"/> (0-based) multiplies q·k by: 1/√head_size unless scale_attn_weights is false,
    /// and 1/(layer + 1) more with scale_attn_by_inverse_layer_idx (codeparrot, Stanford CRFM's GPT-2s).
    /// </summary>
    public T AttentionScale<T>(int layer) where T : IFloatingPointIeee754<T> =>
        (ScaleAttentionWeights ? T.One / T.Sqrt(T.CreateChecked(HeadSize)) : T.One) / (ScaleAttentionByInverseLayerIndex ? T.CreateChecked(layer + 1) : T.One);

    /// <summary>Frozen parameters of the model (a tied LM head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long d = Embedding, perLayer = 2 * d + 2 * d          // ln_1, ln_2
                + d * 3 * d + 3 * d + d * d + d                    // c_attn, attn.c_proj
                + d * Inner + Inner + Inner * d + d;               // mlp.c_fc, mlp.c_proj
            return (long)VocabSize * d * (TiedEmbeddings ? 1 : 2) + (long)MaxPositions * d + Layers * perLayer + 2 * d;
        }
    }

    public double TrainingStepFlops(int rows, int positions, long targets) => Gpt2Shapes.TrainingStepFlops(this, rows, positions, targets);

    public static Gpt2Config Load(string configPath)
    {
        var json = ConfigJson.Read(configPath, "GPT-2");
        int d = json.Int("n_embd");
        var config = new Gpt2Config(json.Int("vocab_size"), json.Int("n_positions"), d, json.Int("n_layer"), json.Int("n_head"),
            json.Int("n_inner", 4 * d), json.Number("layer_norm_epsilon", 1e-5), json.String("activation_function", "gelu_new"),
            ScaleAttentionWeights: json.Bool("scale_attn_weights", true),
            ScaleAttentionByInverseLayerIndex: json.Bool("scale_attn_by_inverse_layer_idx", false),
            TiedEmbeddings: json.Bool("tie_word_embeddings", true));
        config.Validate(configPath);
        return config;
    }

    public void Validate(string source)
    {
        ConfigJson.RequirePositive(source, ("vocab_size", VocabSize), ("n_positions", MaxPositions), ("n_embd", Embedding), ("n_layer", Layers),
            ("n_head", Heads), ("n_inner", Inner));
        if (Embedding % Heads != 0)
            throw new CheckpointException($"{source}: n_embd {Embedding} is not divisible by n_head {Heads}.");
        if (Activation is not ("gelu_new" or "gelu_pytorch_tanh"))
            throw new CheckpointException($"{source}: activation_function '{Activation}' is not supported (gelu_new, gelu_pytorch_tanh).");
    }
}
