using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.Llama;

/// <summary>
/// Llama-3's rope_scaling ("rope_type": "llama3"): long wavelengths are slowed by <see cref="Factor"/>, short ones kept,
/// the band between them interpolated (Hugging Face's _compute_llama3_parameters). "linear" divides every frequency by the factor.
/// </summary>
public sealed record LlamaRopeScaling(string Type, double Factor, double LowFrequencyFactor = 1, double HighFrequencyFactor = 4, int OriginalMaxPositions = 8192)
{
    public const string Llama3 = "llama3";
    public const string Linear = "linear";
}

/// <summary>
/// Llama-style decoder hyper-parameters as Hugging Face's config.json names them (hidden_size, num_key_value_heads,
/// rope_theta, …): RMSNorm, rotate-half RoPE, SwiGLU MLP and grouped-query attention. Biases exist only on the attention
/// projections: q, k, v in Qwen2 (<see cref="QueryKeyValueBiases"/>), and o too in Llama's attention_bias (<see cref="OutputBias"/>).
/// The attention width is Heads·HeadSize, which need not equal hidden_size when config.json gives head_dim.
/// </summary>
public sealed record LlamaConfig(
    int VocabSize,
    int Embedding,
    int Layers,
    int Heads,
    int KeyValueHeads,
    int HeadSize,
    int Intermediate,
    int MaxPositions,
    double RmsNormEpsilon,
    double RopeTheta,
    LlamaRopeScaling? RopeScaling,
    bool TiedEmbeddings,
    int? BosTokenId = null,
    int? EosTokenId = null,
    int? SlidingWindow = null,
    bool QueryKeyValueBiases = false,
    bool OutputBias = false) : IModelConfig
{
    public const string Qwen2ModelType = "qwen2";

    public ModelFamily Family => LlamaFamily.Instance;

    /// <summary>
    /// Longest sequence (prompt included) the engines accept: max_position_embeddings, or Mistral's sliding_window when
    /// smaller, because within the window sliding-window attention is plain causal attention and beyond it it is not.
    /// </summary>
    public int SequenceLimit => SlidingWindow is int window && window < MaxPositions ? window : MaxPositions;

    /// <summary>Heads·head_dim: the width of q and of o's input.</summary>
    public int AttentionSize => Heads * HeadSize;
    /// <summary>KeyValueHeads·head_dim: the width of k and v.</summary>
    public int KeyValueSize => KeyValueHeads * HeadSize;
    /// <summary>Query heads per key/value head (HF's num_key_value_groups): query head h reads kv head h / Group.</summary>
    public int Group => Heads / KeyValueHeads;

    public long ParameterCount
    {
        get
        {
            long d = Embedding, attention = d * AttentionSize * 2 + d * KeyValueSize * 2, mlp = 3 * d * Intermediate;
            long biases = (QueryKeyValueBiases ? AttentionSize + 2L * KeyValueSize : 0) + (OutputBias ? d : 0);
            return (long)VocabSize * d * (TiedEmbeddings ? 1 : 2) + Layers * (attention + biases + mlp + 2 * d) + d;
        }
    }

    /// <summary>
    /// Multiply-adds ×2 of one forward + input-gradient-only backward: every block GEMM once forward and once backward,
    /// attention score and value products over the causal pairs (forward 2, backward 5 per pair: the backward recomputes
    /// the scores), and the LM head at target positions only.
    /// </summary>
    public double TrainingStepFlops(int rows, int positions, long targets)
    {
        double n = (double)rows * positions, d = Embedding;
        double gemms = 2 * n * (d * AttentionSize * 2 + d * KeyValueSize * 2 + 3 * d * Intermediate);
        double pairs = rows * (double)positions * (positions + 1) / 2;
        double attention = (2 + 5) * 2 * AttentionSize * pairs;
        return Layers * (2 * gemms + attention) + 2 * 2 * targets * d * VocabSize;
    }

    /// <summary>
    /// RoPE's inverse frequencies [HeadSize / 2] in <typeparamref name="T"/>, as Hugging Face computes them in its dtype:
    /// 1 / θ^(2j/hd), then the rope_scaling adjustment.
    /// </summary>
    public T[] InverseFrequencies<T>() where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
    {
        int half = HeadSize / 2;
        var inverse = new T[half];
        T theta = T.CreateChecked(RopeTheta), dim = T.CreateChecked(HeadSize);
        for (int j = 0; j < half; j++) inverse[j] = T.One / T.Pow(theta, T.CreateChecked(2 * j) / dim);
        if (RopeScaling is { Type: LlamaRopeScaling.Linear } linear)
            for (int j = 0; j < half; j++) inverse[j] /= T.CreateChecked(linear.Factor);
        if (RopeScaling is { Type: LlamaRopeScaling.Llama3 } s)
        {
            T factor = T.CreateChecked(s.Factor), low = T.CreateChecked(s.LowFrequencyFactor), high = T.CreateChecked(s.HighFrequencyFactor);
            T old = T.CreateChecked(s.OriginalMaxPositions), twoPi = T.CreateChecked(2 * Math.PI);
            T lowWavelength = old / low, highWavelength = old / high;
            for (int j = 0; j < half; j++)
            {
                T wavelength = twoPi / inverse[j];
                if (wavelength > lowWavelength) inverse[j] /= factor;
                else if (wavelength >= highWavelength)
                {
                    T smooth = (old / wavelength - low) / (high - low);
                    inverse[j] = (T.One - smooth) * inverse[j] / factor + smooth * inverse[j];
                }
            }
        }
        return inverse;
    }

    public static LlamaConfig Load(string configPath)
    {
        var json = ConfigJson.Read(configPath, "Llama");
        var root = json.Root;
        int Int(string name, int? fallback = null) => json.Int(name, fallback);

        if (json.Bool("mlp_bias", false))
            throw new CheckpointException($"{configPath}: mlp_bias=true (MLP biases) is not supported; SoftPrompt runs Llama-style MLPs without biases.");
        // Qwen2 is Llama with biases on q, k and v (its config has no attention_bias key: the biases are part of the
        // architecture); Llama's attention_bias puts them on q, k, v and o.
        bool qwen2 = json.String("model_type", "") == Qwen2ModelType;
        bool attentionBias = json.Bool("attention_bias", false);
        if (root.TryGetProperty("hidden_act", out var act) && act.ValueKind == JsonValueKind.String && act.GetString() != "silu")
            throw new CheckpointException($"{configPath}: hidden_act '{act.GetString()}' is not supported; Llama-style models use 'silu' (SwiGLU).");

        var (ropeTheta, ropeScaling) = ReadRope(json);
        int hidden = Int("hidden_size"), heads = Int("num_attention_heads");
        if (heads <= 0) throw new CheckpointException($"{configPath}: num_attention_heads must be positive, got {heads}.");
        var config = new LlamaConfig(
            VocabSize: Int("vocab_size"),
            Embedding: hidden,
            Layers: Int("num_hidden_layers"),
            Heads: heads,
            KeyValueHeads: Int("num_key_value_heads", heads),
            HeadSize: Int("head_dim", hidden / heads),
            Intermediate: Int("intermediate_size"),
            MaxPositions: Int("max_position_embeddings"),
            RmsNormEpsilon: json.Number("rms_norm_eps", 1e-6),
            RopeTheta: ropeTheta,
            RopeScaling: ropeScaling,
            TiedEmbeddings: json.Bool("tie_word_embeddings", false),
            BosTokenId: json.OptionalInt("bos_token_id"),
            EosTokenId: json.OptionalInt("eos_token_id"),
            SlidingWindow: SlidingWindowOf(json, qwen2),
            QueryKeyValueBiases: qwen2 || attentionBias,
            OutputBias: !qwen2 && attentionBias);
        config.Validate(configPath);
        return config;
    }

    /// <summary>
    /// The attention window, if one applies. Qwen2 configs always name a sliding_window but use it only with
    /// use_sliding_window (and then from max_window_layers on); within the window every layer is plain causal attention,
    /// so the window bounds the sequence as Mistral's does (<see cref="SequenceLimit"/>) and nothing else changes.
    /// </summary>
    private static int? SlidingWindowOf(ConfigJson json, bool qwen2) =>
        qwen2 && !json.Bool("use_sliding_window", false) ? null : json.OptionalInt("sliding_window");

    /// <summary>
    /// RoPE's base and scaling. transformers v4 writes them at the top level (rope_theta, rope_scaling); v5 moves both
    /// into rope_parameters and writes that key on every save, keeping the old keys only when they were loaded. A config
    /// that has both must say the same thing in both, or we cannot know which one the model was trained with.
    /// </summary>
    private static (double Theta, LlamaRopeScaling? Scaling) ReadRope(ConfigJson json)
    {
        double legacyTheta = json.Number("rope_theta", 10000);
        var legacyScaling = json.Has("rope_scaling") ? ReadRopeScaling(json.Root.GetProperty("rope_scaling"), "rope_scaling", json.Path, defaultType: null) : null;
        if (!json.Has("rope_parameters")) return (legacyTheta, legacyScaling);

        var parameters = json.Root.GetProperty("rope_parameters");
        if (parameters.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{json.Path}: rope_parameters must be an object or null.");
        foreach (var field in parameters.EnumerateObject())
            if (field.Value.ValueKind == JsonValueKind.Object)
                throw new CheckpointException($"{json.Path}: rope_parameters.{field.Name} gives RoPE per layer type; SoftPrompt runs one RoPE for every layer (Llama-style models).");
        if (parameters.TryGetProperty("partial_rotary_factor", out var partial) && !(partial.ValueKind == JsonValueKind.Number && partial.GetDouble() == 1))
            throw new CheckpointException($"{json.Path}: rope_parameters.partial_rotary_factor {partial} is not supported; SoftPrompt rotates every channel of a head.");
        double theta = parameters.TryGetProperty("rope_theta", out var t) && t.ValueKind == JsonValueKind.Number ? t.GetDouble()
            : parameters.TryGetProperty("rope_theta", out _) ? throw new CheckpointException($"{json.Path}: rope_parameters.rope_theta is not a number.")
            : legacyTheta;
        var scaling = ReadRopeScaling(parameters, "rope_parameters", json.Path, defaultType: "default");
        if (json.Has("rope_theta") && legacyTheta != theta)
            throw new CheckpointException($"{json.Path}: rope_theta {legacyTheta} and rope_parameters.rope_theta {theta} disagree; remove the one the model was not trained with.");
        if (json.Has("rope_scaling") && legacyScaling != scaling)
            throw new CheckpointException($"{json.Path}: rope_scaling ({Describe(legacyScaling)}) and rope_parameters ({Describe(scaling)}) disagree; remove the one the model was not trained with.");
        return (theta, scaling);
    }

    private static string Describe(LlamaRopeScaling? scaling) => scaling is null ? "no scaling" : scaling.ToString();

    /// <param name="defaultType">The type when neither rope_type nor type is given: "default" in v5's rope_parameters; none in v4's rope_scaling.</param>
    private static LlamaRopeScaling? ReadRopeScaling(JsonElement s, string key, string configPath, string? defaultType)
    {
        if (s.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{configPath}: {key} must be an object or null.");
        string? type = s.TryGetProperty("rope_type", out var rt) && rt.ValueKind == JsonValueKind.String ? rt.GetString()
            : s.TryGetProperty("type", out var ty) && ty.ValueKind == JsonValueKind.String ? ty.GetString() : defaultType;
        double Field(string name) =>
            s.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble()
            : throw new CheckpointException($"{configPath}: {key}.{name} is missing or not a number.");
        return type switch
        {
            "default" => null,
            LlamaRopeScaling.Linear => new LlamaRopeScaling(LlamaRopeScaling.Linear, Field("factor")),
            LlamaRopeScaling.Llama3 => new LlamaRopeScaling(LlamaRopeScaling.Llama3, Field("factor"), Field("low_freq_factor"), Field("high_freq_factor"),
                (int)Field("original_max_position_embeddings")),
            _ => throw new CheckpointException(
                $"{configPath}: {key} type '{type}' is not supported; SoftPrompt computes 'linear' and 'llama3' RoPE scaling (dynamic NTK and YaRN are not implemented)."),
        };
    }

    public void Validate(string source)
    {
        ConfigJson.RequirePositive(source, ("vocab_size", VocabSize), ("hidden_size", Embedding), ("num_hidden_layers", Layers), ("num_attention_heads", Heads),
            ("num_key_value_heads", KeyValueHeads), ("head_dim", HeadSize), ("intermediate_size", Intermediate), ("max_position_embeddings", MaxPositions));
        if (Heads % KeyValueHeads != 0)
            throw new CheckpointException($"{source}: num_attention_heads {Heads} is not a multiple of num_key_value_heads {KeyValueHeads}; grouped-query attention needs whole groups.");
        if (HeadSize % 2 != 0) throw new CheckpointException($"{source}: head_dim {HeadSize} must be even (RoPE rotates pairs of channels).");
        if (SlidingWindow is <= 0) throw new CheckpointException($"{source}: sliding_window must be positive or null, got {SlidingWindow}.");
        if (RopeTheta <= 0) throw new CheckpointException($"{source}: rope_theta must be positive, got {RopeTheta}.");
        if (RopeScaling is { Factor: <= 0 }) throw new CheckpointException($"{source}: rope_scaling.factor must be positive.");
        if (RopeScaling is { Type: LlamaRopeScaling.Llama3 } s && (s.HighFrequencyFactor <= s.LowFrequencyFactor || s.OriginalMaxPositions <= 0))
            throw new CheckpointException($"{source}: llama3 rope_scaling needs high_freq_factor > low_freq_factor and a positive original_max_position_embeddings.");
    }
}
