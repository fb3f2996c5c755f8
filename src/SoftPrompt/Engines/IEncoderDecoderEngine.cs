namespace SoftPrompt.Engines;

/// <summary>
/// An engine whose rows' input tokens (after the prompt) feed an encoder and whose targets feed a teacher-forced
/// decoder (T5). Decoding cannot use <see cref="IPromptEngine.NextTokenLogits"/>, whose rows do not say where the
/// input ends; it reads the decoder's logits behind the tokens generated so far instead.
/// </summary>
public interface IEncoderDecoderEngine : IPromptEngine
{
    /// <summary>
    /// Decoder logits [batch.Rows, T, VocabSize] with T the batch's longest target: position j of row b predicts
    /// target j from targets 0..j−1 (decoder_start before them), so its value never depends on target j itself.
    /// Positions past a row's targets are padding.
    /// </summary>
    void DecoderLogits(TokenBatch batch, Span<float> logits);

    /// <summary>
    /// Greedy decoding's step: for each row, the argmax (first among equal maxima) of the decoder logits at its last
    /// target position (Count − 1: the placeholder behind the tokens generated so far), into <paramref name="tokens"/>.
    /// Device engines decide it on the device and copy one int per row.
    /// </summary>
    void DecoderNextTokens(TokenBatch batch, Span<int> tokens);
}
