using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.T5;

/// <summary>
/// T5 hyper-parameters as Hugging Face's config.json names them (d_model, d_kv, d_ff, num_layers, …).
/// The attention width is Heads·HeadSize, which need not equal d_model (t5-v1_1-small: 6 × 64 = 384 vs 512).
/// </summary>
public sealed record T5Config(
    int VocabSize,
    int Embedding,
    int HeadSize,
    int FeedForwardSize,
    int Layers,
    int DecoderLayers,
    int Heads,
    int RelativeBuckets,
    int RelativeMaxDistance,
    string FeedForwardProjection,
    bool TiedEmbeddings,
    double LayerNormEpsilon,
    int DecoderStartTokenId = 0,
    int PadTokenId = 0,
    int EosTokenId = 1,
    int MaxPositions = T5Config.DefaultMaxPositions) : IModelConfig
{
    /// <summary>
    /// T5 has no position table (relative positions), so no hard limit exists; this bounds what a batch may
    /// ask for when config.json gives no n_positions.
    /// </summary>
    public const int DefaultMaxPositions = 4096;
    public const string Relu = "relu";
    public const string GatedGelu = "gated-gelu";

    public ModelFamily Family => T5Family.Instance;

    /// <summary>Heads·d_kv: the width of q, k, v and the input of o.</summary>
    public int AttentionSize => Heads * HeadSize;

    /// <summary>v1.1 (gated-gelu): gelu_new(wi_0 x) ⊙ wi_1 x. v1.0 (relu): relu(wi x).</summary>
    public bool IsGated => FeedForwardProjection == GatedGelu;

    public long ParameterCount
    {
        get
        {
            long d = Embedding, a = AttentionSize, attention = 4 * d * a, ffn = (IsGated ? 3 : 2) * d * FeedForwardSize;
            long encoder = Layers * (attention + ffn + 2 * d) + d;
            long decoder = DecoderLayers * (2 * attention + ffn + 3 * d) + d;
            long embeddings = (long)VocabSize * d * (TiedEmbeddings ? 1 : 2);
            return embeddings + encoder + decoder + 2L * RelativeBuckets * Heads;
        }
    }

    /// <summary>
    /// For the contract's layout (rows of prompt + tokens, the last targets/rows tokens of each row are targets):
    /// the decoder runs over ⌈targets/rows⌉ positions, the encoder over the rest.
    /// </summary>
    public double TrainingStepFlops(int rows, int positions, long targets)
    {
        int decoder = (int)Math.Min(positions - 1, (targets + rows - 1) / rows);
        return TrainingStepFlops(rows, positions - decoder, decoder, targets);
    }

    /// <summary>
    /// Multiply-adds ×2 of one forward + input-gradient-only backward: every block GEMM once forward and once
    /// backward, attention score and value products (forward 2, backward 5 per pair as in FlashAttention: the
    /// backward recomputes the scores), the cross-attention k/v projections over the encoder positions, and the
    /// LM head at target positions only.
    /// </summary>
    public double TrainingStepFlops(int rows, int encoderPositions, int decoderPositions, long targets)
    {
        double ne = (double)rows * encoderPositions, nd = (double)rows * decoderPositions, d = Embedding, a = AttentionSize;
        double ffn = (IsGated ? 3 : 2) * d * FeedForwardSize;
        double encoderGemms = 2 * ne * (4 * d * a + ffn);
        double decoderGemms = 2 * nd * (4 * d * a + 2 * d * a + ffn) + 2 * ne * 2 * d * a;
        double encoderPairs = (double)rows * encoderPositions * encoderPositions;
        double decoderPairs = rows * (double)decoderPositions * (decoderPositions + 1) / 2 + (double)rows * decoderPositions * encoderPositions;
        double attention = (2 + 5) * 2 * a;
        double head = 2 * 2 * targets * d * VocabSize;
        return Layers * (2 * encoderGemms + attention * encoderPairs) + DecoderLayers * (2 * decoderGemms + attention * decoderPairs) + head;
    }

    public static T5Config Load(string configPath)
    {
        var json = ConfigJson.Read(configPath, "T5");
        int Int(string name, int? fallback = null) => json.Int(name, fallback);
        double eps = json.Number("layer_norm_epsilon", 1e-6);
        string projection = json.String("feed_forward_proj", Relu);
        bool tied = json.Bool("tie_word_embeddings", true);
        int layers = Int("num_layers");
        var config = new T5Config(
            VocabSize: Int("vocab_size"),
            Embedding: Int("d_model"),
            HeadSize: Int("d_kv"),
            FeedForwardSize: Int("d_ff"),
            Layers: layers,
            DecoderLayers: Int("num_decoder_layers", layers),
            Heads: Int("num_heads"),
            RelativeBuckets: Int("relative_attention_num_buckets", 32),
            RelativeMaxDistance: Int("relative_attention_max_distance", 128),
            FeedForwardProjection: projection,
            TiedEmbeddings: tied,
            LayerNormEpsilon: eps,
            DecoderStartTokenId: Int("decoder_start_token_id", 0),
            PadTokenId: Int("pad_token_id", 0),
            EosTokenId: Int("eos_token_id", 1),
            MaxPositions: Int("n_positions", DefaultMaxPositions));
        config.Validate(configPath);
        return config;
    }

    public void Validate(string source)
    {
        if (VocabSize <= 0 || Embedding <= 0 || HeadSize <= 0 || FeedForwardSize <= 0 || Layers <= 0 || DecoderLayers <= 0 || Heads <= 0 || MaxPositions <= 0)
            throw new CheckpointException($"{source}: vocab_size, d_model, d_kv, d_ff, num_layers, num_decoder_layers, num_heads and n_positions must be positive ({this}).");
        if (FeedForwardProjection is not (Relu or GatedGelu))
            throw new CheckpointException($"{source}: feed_forward_proj '{FeedForwardProjection}' is not supported; SoftPrompt runs '{Relu}' (T5 v1.0) and '{GatedGelu}' (T5 v1.1, LM-adapted).");
        // Bidirectional buckets split in two halves, each with RelativeBuckets/4 exact buckets before the log range.
        if (RelativeBuckets < 4)
            throw new CheckpointException($"{source}: relative_attention_num_buckets {RelativeBuckets} is too small; T5 needs at least 4 (the encoder halves them and keeps a quarter exact).");
        if (RelativeMaxDistance <= RelativeBuckets / 2)
            throw new CheckpointException($"{source}: relative_attention_max_distance {RelativeMaxDistance} must exceed half of relative_attention_num_buckets ({RelativeBuckets / 2}), or the logarithmic buckets are undefined.");
        if ((uint)DecoderStartTokenId >= (uint)VocabSize)
            throw new CheckpointException($"{source}: decoder_start_token_id {DecoderStartTokenId} is outside the vocabulary [0, {VocabSize}).");
        if ((uint)PadTokenId >= (uint)VocabSize)
            throw new CheckpointException($"{source}: pad_token_id {PadTokenId} is outside the vocabulary [0, {VocabSize}).");
    }
}
