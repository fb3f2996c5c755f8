namespace SoftPrompt.Models.Gpt2;

/// <summary>Named GPT-2 shapes for benchmarks (weights are random: no download needed), and the FLOPs of a prompt-tuning step.</summary>
public static class Gpt2Shapes
{
    public static readonly IReadOnlyDictionary<string, Gpt2Config> Named = new Dictionary<string, Gpt2Config>
    {
        ["gpt2-small"] = new(50257, 1024, 768, 12, 12, 3072, 1e-5, "gelu_new"),
        ["gpt2-medium"] = new(50257, 1024, 1024, 24, 16, 4096, 1e-5, "gelu_new"),
        ["gpt2-large"] = new(50257, 1024, 1280, 36, 20, 5120, 1e-5, "gelu_new"),
        ["gpt2-xl"] = new(50257, 1024, 1600, 48, 25, 6400, 1e-5, "gelu_new"),
    };

    /// <summary>
    /// Multiply-adds ×2 of one forward + input-gradient-only backward over <paramref name="rows"/> rows of
    /// <paramref name="positions"/> positions with <paramref name="targets"/> target tokens in all: the block GEMMs
    /// once forward and once backward (no weight gradients), causal attention (QKᵀ and PV forward; the backward
    /// recomputes QKᵀ and forms dV, dP, dQ, dK), and the LM head at target positions forward and backward.
    /// </summary>
    public static double TrainingStepFlops(Gpt2Config c, int rows, int positions, long targets)
    {
        double n = (double)rows * positions, d = c.Embedding;
        double blockGemms = 2 * n * (d * 3 * d + d * d + 2 * d * c.Inner);
        double causalPairs = rows * (double)positions * (positions + 1) / 2;
        double attentionForward = 2 * 2 * causalPairs * d;
        double attentionBackward = 5 * 2 * causalPairs * d;
        double head = 2 * 2 * targets * d * c.VocabSize;
        return c.Layers * (2 * blockGemms + attentionForward + attentionBackward) + head;
    }
}
