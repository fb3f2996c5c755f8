using System.Text.Json;
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
    string Activation) : IModelConfig
{
    public ModelFamily Family => Gpt2Family.Instance;

    public int HeadSize => Embedding / Heads;

    /// <summary>Frozen parameters of the model (tied LM head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long d = Embedding, perLayer = 2 * d + 2 * d          // ln_1, ln_2
                + d * 3 * d + 3 * d + d * d + d                    // c_attn, attn.c_proj
                + d * Inner + Inner + Inner * d + d;               // mlp.c_fc, mlp.c_proj
            return (long)VocabSize * d + (long)MaxPositions * d + Layers * perLayer + 2 * d;
        }
    }

    public double TrainingStepFlops(int rows, int positions, long targets) => Gpt2Shapes.TrainingStepFlops(this, rows, positions, targets);

    public static Gpt2Config Load(string configPath)
    {
        JsonElement root;
        try
        {
            using var stream = File.OpenRead(configPath);
            root = JsonDocument.Parse(stream).RootElement.Clone();
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{configPath}: cannot read config.json ({e.Message}).", e);
        }
        int Int(string name, int? fallback = null)
        {
            if (root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number) return v.GetInt32();
            return fallback ?? throw new CheckpointException($"{configPath}: required field '{name}' is missing or not a number.");
        }
        int d = Int("n_embd");
        int inner = root.TryGetProperty("n_inner", out var ni) && ni.ValueKind == JsonValueKind.Number ? ni.GetInt32() : 4 * d;
        double eps = root.TryGetProperty("layer_norm_epsilon", out var epsValue) && epsValue.ValueKind == JsonValueKind.Number ? epsValue.GetDouble() : 1e-5;
        string act = root.TryGetProperty("activation_function", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "gelu_new";
        var config = new Gpt2Config(Int("vocab_size"), Int("n_positions"), d, Int("n_layer"), Int("n_head"), inner, eps, act);
        config.Validate(configPath);
        return config;
    }

    public void Validate(string source)
    {
        if (VocabSize <= 0 || MaxPositions <= 0 || Embedding <= 0 || Layers <= 0 || Heads <= 0 || Inner <= 0)
            throw new CheckpointException($"{source}: sizes must be positive ({this}).");
        if (Embedding % Heads != 0)
            throw new CheckpointException($"{source}: n_embd {Embedding} is not divisible by n_head {Heads}.");
        if (Activation is not ("gelu_new" or "gelu_pytorch_tanh"))
            throw new CheckpointException($"{source}: activation_function '{Activation}' is not supported (gelu_new, gelu_pytorch_tanh).");
    }
}
