using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Models;

/// <summary>
/// A checkpoint's input token embeddings [V, d] with its config and fingerprint, whatever its family, read without
/// the rest of the weights: enough to check that a prompt belongs to the model and to find its nearest tokens,
/// at a fraction of a full load (t5-xl's table is 2% of its weights).
/// </summary>
public sealed record TokenEmbeddingTable(IModelConfig Config, float[] Values, string Fingerprint)
{
    /// <summary>The family from config.json (<see cref="ModelFamily.Detect"/>): GPT-2's wte, T5's shared embedding or Llama's embed_tokens (where prompts live).</summary>
    public static TokenEmbeddingTable Load(string modelDirectory)
    {
        string family = ModelFamily.Detect(modelDirectory);
        if (family == ModelFamily.Llama)
        {
            var (llama, embedTokens) = LlamaCheckpoint.LoadTokenEmbedding<float>(modelDirectory);
            return new TokenEmbeddingTable(llama, embedTokens, ModelFingerprint.Of(llama, embedTokens));
        }
        if (family == ModelFamily.T5)
        {
            var (t5, shared) = T5Checkpoint.LoadTokenEmbedding<float>(modelDirectory);
            return new TokenEmbeddingTable(t5, shared, ModelFingerprint.Of(t5, shared));
        }
        var (gpt2, wte) = Gpt2Checkpoint.LoadTokenEmbedding<float>(modelDirectory);
        return new TokenEmbeddingTable(gpt2, wte, ModelFingerprint.Of(gpt2, wte));
    }
}
