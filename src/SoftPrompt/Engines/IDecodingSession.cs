namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding over a fixed number of slots, each holding one sequence: its prompt, its input and what has been
/// generated so far. Every token's keys and values are computed once and kept; each prompt's are computed once when the
/// session opens and shared by every slot that uses it. A step runs each listed slot's tokens not yet seen (a whole input
/// right after <see cref="Begin"/>, one token after <see cref="Append"/>) in one packed pass, so prefill and decoding of
/// different slots share a step, and gives the logits of the token that follows each listed slot. The session sees the
/// prompts as they were when it opened.
/// </summary>
public interface IDecodingSession : IDisposable
{
    int Slots { get; }
    /// <summary>Input plus generated tokens one slot holds.</summary>
    int TokensPerSlot { get; }

    /// <summary>Starts <paramref name="slot"/> over with prompt <paramref name="promptIndex"/> and <paramref name="input"/> (at least one token).</summary>
    void Begin(int slot, int promptIndex, ReadOnlySpan<int> input);
    /// <summary>Adds <paramref name="token"/> (usually the one just chosen) to <paramref name="slot"/>'s sequence.</summary>
    void Append(int slot, int token);
    /// <summary>Runs the listed slots' new tokens; <paramref name="logits"/> [slots.Length, VocabSize]: the next token's logits per slot.</summary>
    void NextTokenLogits(ReadOnlySpan<int> slots, Span<float> logits);
    /// <summary>As <see cref="NextTokenLogits"/>, keeping only each slot's argmax (the first among equal maxima).</summary>
    void NextTokens(ReadOnlySpan<int> slots, Span<int> tokens);
}
