namespace SoftPrompt.Models;

/// <summary>
/// A checkpoint's input token embeddings [V, d] with its config and fingerprint, whatever its family, read without
/// the rest of the weights: enough to check that a prompt belongs to the model and to find its nearest tokens,
/// at a fraction of a full load (t5-xl's table is 2% of its weights).
/// </summary>
public sealed record TokenEmbeddingTable(IModelConfig Config, float[] Values, string Fingerprint)
{
    /// <summary>The family from config.json (<see cref="ModelFamily.Detect"/>) reads its table (<see cref="ModelFamily.LoadTokenEmbedding"/>): GPT-2's wte, T5's shared embedding or Llama's embed_tokens (where prompts live).</summary>
    public static TokenEmbeddingTable Load(string modelDirectory) => ModelFamily.Detect(modelDirectory).LoadTokenEmbedding(modelDirectory);
}
