using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.T5;

/// <summary>
/// T5 hyper-parameters as Hugging Face's config.json names them (d_model, d_kv, d_ff, num_layers, …).
/// The attention width is Heads·HeadSize, which need not equal d_model (t5-v1_1-small: 6 × 64 = 384 vs 512).
/// mT5 (model_type "mt5") is T5 v1.1's arithmetic with a 250k vocabulary; only its config defaults differ.
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
    int MaxPositions = T5Config.DefaultMaxPositions,
    bool? DecoderOutputScaling = null) : IModelConfig
{
    /// <summary>
    /// T5 has no position table (relative positions), so no hard limit exists; this bounds what a batch may
    /// ask for when config.json gives no n_positions.
    /// </summary>
    public const int DefaultMaxPositions = 4096;
    public const string Relu = "relu";
    public const string GatedGelu = "gated-gelu";
    public const string MT5ModelType = "mt5";

    public ModelFamily Family => T5Family.Instance;

    /// <summary>
    /// The decoder output is multiplied by d_model^-0.5 before the LM head. transformers v5 records it as
    /// scale_decoder_outputs (<see cref="DecoderOutputScaling"/>, and then writes tie_word_embeddings: true for every
    /// T5); v4 configs have no such key and rescale exactly when the head is tied.
    /// </summary>
    public bool RescalesDecoderOutput => DecoderOutputScaling ?? TiedEmbeddings;

    /// <summary>
    /// The config with the head decided as transformers v5 decides it when scale_decoder_outputs is present: lm_head.weight
    /// when the checkpoint has one, else the shared table. v4 configs keep tie_word_embeddings' answer.
    /// </summary>
    public T5Config WithHeadOf(bool checkpointHasHead) => DecoderOutputScaling is null ? this : this with { TiedEmbeddings = !checkpointHasHead };

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
        // MT5Config's defaults are v1.1's (gated-gelu, untied head); T5Config's are v1.0's (relu, tied).
        bool mt5 = json.String("model_type", "t5") == MT5ModelType;
        string projection = FeedForwardOf(json, mt5 ? GatedGelu : Relu);
        bool tied = json.Bool("tie_word_embeddings", !mt5);
        bool? scaling = json.Has("scale_decoder_outputs") ? json.Bool("scale_decoder_outputs", false) : null;
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
            MaxPositions: Int("n_positions", DefaultMaxPositions),
            DecoderOutputScaling: scaling);
        config.Validate(configPath);
        return config;
    }

    /// <summary>
    /// feed_forward_proj ("relu", "gated-gelu"), checked against the dense_act_fn and is_gated_act that transformers
    /// derives from it and saves next to it: a config where they disagree was edited by hand, and which of the two the
    /// weights were trained with cannot be known.
    /// </summary>
    private static string FeedForwardOf(ConfigJson json, string fallback)
    {
        string projection = json.String("feed_forward_proj", fallback);
        if (projection is not (Relu or GatedGelu))
            throw new CheckpointException($"{json.Path}: feed_forward_proj '{projection}' is not supported; SoftPrompt runs '{Relu}' (T5 v1.0) and '{GatedGelu}' (T5 v1.1, LM-adapted).");
        bool gated = projection == GatedGelu;
        string activation = gated ? "gelu_new" : "relu";
        if (json.Bool("is_gated_act", gated) != gated || json.String("dense_act_fn", activation) is var named && named != activation && !(gated && named == "gelu_pytorch_tanh"))
            throw new CheckpointException(
                $"{json.Path}: feed_forward_proj '{projection}' means dense_act_fn '{activation}' and is_gated_act {(gated ? "true" : "false")}, but config.json says "
                + $"dense_act_fn '{json.String("dense_act_fn", activation)}' and is_gated_act {(json.Bool("is_gated_act", gated) ? "true" : "false")}; "
                + "restore the config.json that came with these weights.");
        return projection;
    }

    public void Validate(string source)
    {
        ConfigJson.RequirePositive(source, ("vocab_size", VocabSize), ("d_model", Embedding), ("d_kv", HeadSize), ("d_ff", FeedForwardSize),
            ("num_layers", Layers), ("num_decoder_layers", DecoderLayers), ("num_heads", Heads), ("n_positions", MaxPositions));
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
