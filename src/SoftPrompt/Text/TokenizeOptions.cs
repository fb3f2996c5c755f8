using SoftPrompt.Models;

namespace SoftPrompt.Text;

/// <summary>
/// How rows become token ids. Truncation policy: when input + target exceed <see cref="MaxTokens"/>, tokens are
/// dropped from the START of the input (after a leading BOS, which stays), so the text next to the answer ("answer:")
/// survives. The target is never truncated: a row whose target leaves no room for input is a bad row.
/// </summary>
public sealed record TokenizeOptions
{
    /// <summary>Longest input + target in tokens: the model's n_positions − prompt length.</summary>
    public required int MaxTokens { get; init; }
    /// <summary>Skip and count malformed rows instead of failing on the first.</summary>
    public bool SkipBadRows { get; init; }
    /// <summary>Start the input with the tokenizer's BOS (Llama 2 and 3 do, Qwen2 does not: <see cref="BosConvention"/>).</summary>
    public bool AddBos { get; init; }
    /// <summary>End the input with EOS (T5's encoder input does).</summary>
    public bool InputEos { get; init; }
    /// <summary>End the target with EOS when the tokenizer has one, so the model learns to stop (PEFT's recipe).</summary>
    public bool TargetEos { get; init; } = true;
    /// <summary>Text put before every target before tokenizing, e.g. " " so a GPT-2 answer reads " positive".</summary>
    public string TargetPrefix { get; init; } = "";
    /// <summary>Rows using an id at or above this (the model's embedding rows) are bad rows; null skips the check.</summary>
    public int? ModelVocabSize { get; init; }

    /// <summary>
    /// Hugging Face's conventions for the inputs of the model in <paramref name="modelDirectory"/>: BOS as its tokenizer
    /// declares it (<see cref="BosConvention"/>), EOS after the input as the family has it (<see cref="ModelFamily.InputEndsWithEos"/>: T5).
    /// </summary>
    public static TokenizeOptions For(ModelFamily family, string modelDirectory, int maxTokens) => new()
    {
        MaxTokens = maxTokens,
        AddBos = BosConvention.StartsWithBos(modelDirectory, family),
        InputEos = family.InputEndsWithEos,
    };
}
