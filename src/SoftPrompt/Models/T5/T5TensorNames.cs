namespace SoftPrompt.Models.T5;

/// <summary>Hugging Face's tensor names for T5ForConditionalGeneration, shared by the loader and the writer.</summary>
internal static class T5TensorNames
{
    public const string Shared = "shared.weight";
    public const string EncoderEmbedTokens = "encoder.embed_tokens.weight";
    public const string LanguageModelHead = "lm_head.weight";
    public const string EncoderRelativeBias = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
    public const string DecoderRelativeBias = "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
    public const string EncoderFinalNorm = "encoder.final_layer_norm.weight";
    public const string DecoderFinalNorm = "decoder.final_layer_norm.weight";

    public static string Block(string stack, int index) => $"{stack}.block.{index}.layer.";

    /// <summary>"…SelfAttention." or "…EncDecAttention." + q/k/v/o.</summary>
    public static string Attention(string block, int layer, bool cross) => $"{block}{layer}.{(cross ? "EncDecAttention" : "SelfAttention")}.";

    public static string FeedForward(string block, int layer) => $"{block}{layer}.DenseReluDense.";

    public static string Norm(string block, int layer) => $"{block}{layer}.layer_norm.weight";
}
